"""Checkpoints pushed by hand into model-checkpoints/: a folder with a valid metadata.json naming
a fingerprint the registry knows is registered (a models row and an observation on its model);
folders whose metadata is missing, invalid or names an unknown fingerprint are reported, kept in
`model_checkpoints` for auditors, and listed by `dynamic-assets checkpoints`."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import numpy as np
from click.testing import CliRunner
from sklearn.linear_model import Ridge

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.defs.training.keys import model_key
from dynamic_assets.training import checkpoint as ckpt
from dynamic_assets_tests.support.runs import tick
from dynamic_assets_tests.support.staging import curate_and_fingerprint

V1 = "2024-06-01"
MODEL = "market_next_return"
SENSOR = "model_checkpoints_sensor"


def push(drive_root, model: str, run_id: str, *, metadata: dict | bytes | None, age_s: float = 0):
    """Drop a checkpoint folder the way a trainer would: weights, then (maybe) metadata.json."""
    folder = drive_root / "model-checkpoints" / model / run_id
    folder.mkdir(parents=True)
    weights = ckpt.dump_weights(Ridge().fit(np.eye(3), [1.0, 2.0, 3.0]))
    (folder / "model.skops").write_bytes(weights)
    if metadata is not None:
        raw = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
        (folder / "metadata.json").write_bytes(raw)
    if age_s:
        old = time.time() - age_s
        for f in folder.iterdir():
            os.utime(f, (old, old))
    return weights


def good_metadata(run_id: str, fingerprint: str, weights: bytes | None = None) -> dict:
    return {
        "schema": ckpt.SCHEMA,
        "model": MODEL,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(),
        "framework": "scikit-learn",
        "framework_version": "1.5.2",
        "weights": [{"path": "model.skops", "format": "skops"}],
        "hyperparameters": {"alpha": 3.0},
        "metrics": {"test_rmse": 0.021},
        "dataset": "market",
        "dataset_version": V1,
        "data_fingerprint": fingerprint,
        "git_commit": "9f3c2e1",
        "mlflow_run_id": "0123456789abcdef0123456789abcdef",
        "notebook": "notebooks/ridge.ipynb",  # extra fields are kept
    }


def test_hand_dropped_checkpoints_are_registered_or_reported(
    defs, instance, db, drive, drive_root, decls, settings
):
    fp = curate_and_fingerprint(db, drive, decls, "market", V1)
    instance.add_dynamic_partitions("market_versions", [V1])
    w = push(drive_root, MODEL, "hand-good", metadata=None)
    (drive_root / "model-checkpoints" / MODEL / "hand-good" / "metadata.json").write_text(
        json.dumps(
            good_metadata("hand-good", fp)
            | {
                "weights": [
                    {
                        "path": "model.skops",
                        "format": "skops",
                        "sha256": ckpt.sha256_hex(w),
                        "size_bytes": len(w),
                    }
                ]
            }
        )
    )
    push(drive_root, MODEL, "no-metadata", metadata=None, age_s=3600)
    push(drive_root, MODEL, "still-uploading", metadata=None)
    broken = {k: v for k, v in good_metadata("bad-metadata", fp).items() if k != "git_commit"}
    push(drive_root, MODEL, "bad-metadata", metadata=broken)
    push(
        drive_root,
        "someone_elses",
        "r1",
        metadata=good_metadata("r1", "cd" * 32) | {"model": "someone_elses"},
    )
    (drive_root / "model-checkpoints" / "notes.txt").write_text("where is the model?")

    first = tick(defs, instance, sensor=SENSOR)
    by_run = {e.metadata["run_id"].value: e for e in first.asset_events}
    assert set(by_run) == {"hand-good", "no-metadata", "bad-metadata", "r1"}  # one still uploading

    good = by_run["hand-good"]
    assert good.asset_key == model_key(MODEL) and good.partition == V1
    assert good.metadata["traceable"].value is True
    assert good.metadata["fingerprint_known_as"].value == "current"
    assert good.metadata["data_fingerprint"].value == fp
    for run_id, status, words in [
        ("no-metadata", "missing_metadata", "has 1 file(s) but no metadata.json"),
        ("bad-metadata", "invalid_metadata", "git_commit: Field required"),
        ("r1", "unknown_fingerprint", f"fingerprint {'cd' * 32}, which the registry does not know"),
    ]:
        event = by_run[run_id]
        assert event.metadata["traceable"].value is False
        assert event.metadata["status"].value == status
        assert words in event.metadata["problem"].value
    assert by_run["r1"].asset_key == model_key("someone_elses") and by_run["r1"].partition is None

    with db.connect() as conn:
        models = conn.execute(
            "SELECT m.name, m.version, d.version, m.framework, m.performance_metrics, "
            "m.deployment_locations->>'drive', m.metadata->>'registered_by', m.metadata->>'notebook' "
            "FROM models m JOIN datasets d ON d.id = m.dataset_id"
        ).fetchall()
        audit = dict(
            conn.execute("SELECT run_id, status FROM model_checkpoints ORDER BY run_id").fetchall()
        )
    assert models == [
        (
            MODEL,
            "hand-good",
            V1,
            "scikit-learn",
            {"test_rmse": 0.021},
            f"model-checkpoints/{MODEL}/hand-good",
            "checkpoint_sensor",
            "notebooks/ridge.ipynb",
        )
    ]
    assert audit == {
        "hand-good": "registered",
        "no-metadata": "missing_metadata",
        "bad-metadata": "invalid_metadata",
        "r1": "unknown_fingerprint",
    }

    # Nothing changed: nothing reported again. The late metadata and a fix are picked up.
    second = tick(defs, instance, first.cursor, sensor=SENSOR)
    assert second.asset_events == []
    (drive_root / "model-checkpoints" / MODEL / "still-uploading" / "metadata.json").write_text(
        json.dumps(good_metadata("still-uploading", fp))
    )
    (drive_root / "model-checkpoints" / MODEL / "bad-metadata" / "metadata.json").write_text(
        json.dumps(good_metadata("bad-metadata", fp))
    )
    third = tick(defs, instance, second.cursor, sensor=SENSOR)
    assert {e.metadata["run_id"].value: e.metadata["status"].value for e in third.asset_events} == {
        "still-uploading": "registered",
        "bad-metadata": "registered",
    }

    # An auditor's read-only check lists what cannot be traced, and exits 1.
    result = CliRunner().invoke(
        main,
        ["checkpoints", "--json"],
        env={
            "DYNAMIC_ASSETS_HOME": str(settings.home),
            "DYNAMIC_ASSETS_DRIVE": str(drive_root),
            "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
            "SUPABASE_DB_URL": os.environ["SUPABASE_DB_URL"],
        },
    )
    assert result.exit_code == 1, result.output
    listed = {(r["path"], r["status"]) for r in json.loads(result.output)}
    assert listed == {
        (f"model-checkpoints/{MODEL}/no-metadata", "missing_metadata"),
        ("model-checkpoints/someone_elses/r1", "unknown_fingerprint"),
        ("model-checkpoints/notes.txt", "stray_file"),
    }
