"""Model checkpoints on the declared S3 platforms: `dynamic-assets run` trains each pending model
and puts its skops checkpoint under `models/<model>/<run-id>/` on every S3 platform, byte for
byte the drive's file, recorded in the model's `deployment_locations` and as one signed ledger
entry per object; a platform that refuses the credentials is named with model and run id while
training and the other platform go on; mirroring the same checkpoint again uploads nothing."""

from __future__ import annotations

import hashlib

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.defs.training.keys import model_key, train_job_name
from dynamic_assets.demo.seed import SEED_VERSIONS
from dynamic_assets.provenance import ledger
from dynamic_assets_tests.mirrors.conftest import BUCKET
from dynamic_assets_tests.support.runs import latest_metadata, run_version
from dynamic_assets_tests.support.staging import curate_and_fingerprint
from dynamic_assets_tests.support.tracking import local_store

BACKUP = "ai-backup"
V1 = "2024-06-01"


def _values(metadata) -> dict:
    return {k: v.value for k, v in metadata.items()}


@pytest.fixture
def two_platforms(mirror_decls, s3, monkeypatch):
    """`spaces` with the key the store accepts, `backup` (its own bucket) with a wrong secret."""
    s3.client().create_bucket(Bucket=BACKUP)
    key_id, secret = s3.require_keys()
    monkeypatch.setenv("SPACES_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("SPACES_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("BACKUP_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("BACKUP_SECRET_ACCESS_KEY", "not-the-backup-secret")
    raw = mirror_decls.model_dump(mode="json", exclude_defaults=True)
    raw["platforms"]["backup"] = dict(raw["platforms"]["spaces"], bucket=BACKUP)
    return type(mirror_decls).model_validate(raw), (key_id, secret)


def test_run_mirrors_each_checkpoint_names_a_refused_platform_and_a_second_mirror_is_a_no_op(
    tmp_path, db, drive, drive_root, decls, settings, db_url, two_platforms, s3
):
    mirror_decls, (key_id, secret) = two_platforms
    local_store(settings.home / "mlflow")
    for version in SEED_VERSIONS["market"]:
        curate_and_fingerprint(db, drive, decls, "market", version)
    config = tmp_path / "declarations.yaml"
    config.write_text(yaml.safe_dump(mirror_decls.model_dump(mode="json", exclude_defaults=True)))
    env = {
        "DYNAMIC_ASSETS_HOME": str(settings.home),
        "DYNAMIC_ASSETS_DRIVE": str(drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
        "TON_MNEMONIC": "",
    }
    run = CliRunner().invoke(main, ["run", "--dataset", "market"], env=env)
    out = " ".join(run.output.split())
    assert run.exit_code == 1, run.output  # the refused platform is a problem of the run
    assert "not-the-backup-secret" not in run.output

    with db.connect() as conn:
        models = conn.execute(
            "SELECT name, version, deployment_locations FROM models ORDER BY name, version"
        ).fetchall()
    assert len(models) == 3  # every pending model trained, the refusal notwithstanding
    client = s3.client(key_id, secret)
    for name, run_id, locations in models:
        # named: platform, model and run id, and what the store said
        assert f"mirror backup: model {name} run {run_id}" in out
        assert "access denied for these credentials" in out
        local = (drive_root / locations["drive"] / "model.skops").read_bytes()
        key = f"models/{name}/{run_id}/model.skops"
        stored = client.get_object(Bucket=BUCKET, Key=key)
        data = stored["Body"].read()
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(local).hexdigest()
        assert stored["Metadata"]["sha256"] == hashlib.sha256(local).hexdigest()
        assert locations["spaces"] == {
            "url": f"s3://{BUCKET}/{key}",
            "sha256": hashlib.sha256(local).hexdigest(),
            "size_bytes": len(local),
        }
        assert "backup" not in locations
    assert "Contents" not in client.list_objects_v2(Bucket=BACKUP)
    with db.connect() as conn:
        ledgered = conn.execute(
            "SELECT o.model, o.run_id, a.leaves FROM mirror_objects o "
            "JOIN attestations a ON a.seq = o.ledger_seq "
            "WHERE o.model IS NOT NULL ORDER BY o.model, o.run_id"
        ).fetchall()
        entries = len(ledger.entries(conn))
    assert [(r[0], r[1]) for r in ledgered] == [(m[0], m[1]) for m in models]
    for (name, run_id, leaves), (_, _, locations) in zip(ledgered, models, strict=True):
        assert leaves[0]["model"] == name and leaves[0]["run_id"] == run_id
        assert leaves[0]["mirror"]["sha256"] == locations["spaces"]["sha256"]

    # Again, straight from the core: the store holds those bytes, nothing is uploaded.
    from dynamic_assets.mirrors.models import mirror_checkpoint

    s3.log.requests.clear()
    for name, run_id, locations in models:
        with drive.open(f"{locations['drive']}/model.skops") as weights:
            done = mirror_checkpoint(
                db, mirror_decls, name, run_id, "spaces", weights, file_name="model.skops"
            )
        assert not done.placed.uploaded
    assert s3.log.uploads() == []
    with db.connect() as conn:
        assert len(ledger.entries(conn)) == entries


def test_materializing_the_model_again_mirrors_what_a_refused_platform_missed(
    db, drive, drive_root, decls, settings, two_platforms, s3, monkeypatch
):
    from dynamic_assets.definitions import build_defs

    mirror_decls, (key_id, secret) = two_platforms
    local_store(settings.home / "mlflow")
    curate_and_fingerprint(db, drive, decls, "market", V1)
    defs = build_defs(settings, mirror_decls)
    job = train_job_name("market_next_return")
    with dg.instance_for_test() as instance:
        first = run_version(defs, instance, "market", V1, job=job)
        assert first.success  # a refused platform does not fail the training step
        meta = _values(latest_metadata(instance, model_key("market_next_return"), V1))
        run_id = meta["mlflow_run_id"]
        (failure,) = meta["mirror_failures"]
        assert failure.startswith(f"mirror backup: model market_next_return run {run_id} ")
        assert set(meta["mirrors"]) == {"spaces"}

        # The backup's key fixed: the same version again trains nothing, mirrors the backup.
        monkeypatch.setenv("BACKUP_SECRET_ACCESS_KEY", secret)
        s3.log.requests.clear()
        again = run_version(defs, instance, "market", V1, job=job)
        assert again.success
        meta = _values(latest_metadata(instance, model_key("market_next_return"), V1))
        assert meta["trained"] is False and meta["mlflow_run_id"] == run_id
        assert "mirror_failures" not in meta and set(meta["mirrors"]) == {"spaces", "backup"}
    key = f"models/market_next_return/{run_id}/model.skops"
    assert s3.log.uploads() == [f"/{BACKUP}/{key}"]  # spaces holds those bytes already
    with db.connect() as conn:
        (locations,) = conn.execute(
            "SELECT deployment_locations FROM models WHERE version = %s", (run_id,)
        ).fetchone()
    assert locations["backup"]["url"] == f"s3://{BACKUP}/{key}"
    assert locations["spaces"]["url"] == f"s3://{BUCKET}/{key}"
    local = (drive_root / locations["drive"] / "model.skops").read_bytes()
    stored = s3.client(key_id, secret).get_object(Bucket=BACKUP, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(local).hexdigest()
