"""Checkpoints: skops weights that load back to the same predictions and refuse untrusted types,
and metadata.json validated against the folder it sits in."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dynamic_assets.drive import LocalDrive
from dynamic_assets.training import checkpoint as ckpt

FP = "ab" * 32


class Gadget:
    """A class skops does not know: instances must not load unless named as trusted."""

    def __init__(self, value: int = 1):
        self.value = value


def metadata(**overrides) -> ckpt.CheckpointMetadata:
    doc = {
        "model": "pricer",
        "run_id": "run-1",
        "created_at": datetime(2024, 7, 2, tzinfo=UTC),
        "framework": "scikit-learn",
        "framework_version": "1.5.0",
        "weights": [{"path": "model.skops", "format": "skops"}],
        "hyperparameters": {"alpha": 1.0},
        "metrics": {"test_rmse": 0.5},
        "dataset": "market",
        "dataset_version": "2024-06-01",
        "data_fingerprint": FP,
        "git_commit": "0123abc",
    }
    doc.update(overrides)
    return ckpt.CheckpointMetadata.model_validate(doc)


def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(scale=0.1, size=200)
    return make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=20)).fit(X, y), X


def test_skops_weights_load_back_to_the_same_predictions(tmp_path):
    model, X = fitted()
    data = ckpt.dump_weights(model)
    assert not data.startswith(b"\x80")  # a zip (skops), not a pickle stream
    loaded = ckpt.load_weights(data)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor" in ckpt.trusted_types(
        data
    )


def test_weights_needing_an_untrusted_type_are_refused():
    data = ckpt.dump_weights({"model": Gadget(3)})
    name = f"{__name__}.Gadget"
    with pytest.raises(ckpt.UntrustedCheckpoint, match=name):
        ckpt.load_weights(data)
    assert ckpt.load_weights(data, extra_trusted=[name])["model"].value == 3


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("numpy.dtype", True),
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.base.clone", False),  # a function, not a class
        ("sklearn.utils.fixes.sp_version", False),  # not a type
        ("builtins.eval", False),
        ("os.system", False),
        ("sklearn.does_not_exist.Thing", False),
    ],
)
def test_only_classes_of_sklearn_numpy_scipy_are_trusted(name, trusted):
    assert ckpt._resolve_trusted(name) is trusted


def test_metadata_round_trips_and_names_every_problem():
    raw = metadata().to_json()
    doc = json.loads(raw)
    assert doc["schema"] == ckpt.SCHEMA and doc["data_fingerprint"] == FP
    meta = ckpt.parse_metadata(raw, model="pricer", run_id="run-1", files={"model.skops": 10})
    assert meta.metrics == {"test_rmse": 0.5}

    missing = {k: v for k, v in doc.items() if k not in ("git_commit", "dataset_version")}
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.parse_metadata(json.dumps(missing).encode())
    assert "git_commit: Field required" in str(err.value)
    assert "dataset_version: Field required" in str(err.value)

    bad_fp = json.dumps(doc | {"data_fingerprint": "xyz"}).encode()
    with pytest.raises(ckpt.CheckpointError, match="data_fingerprint: .*64 lowercase hex"):
        ckpt.parse_metadata(bad_fp)
    with pytest.raises(ckpt.CheckpointError, match="model is 'pricer' but the folder is for 'x'"):
        ckpt.parse_metadata(raw, model="x", run_id="run-1")
    with pytest.raises(ckpt.CheckpointError, match="weights file model.skops is not in the folder"):
        ckpt.parse_metadata(raw, files={"other.bin": 3})
    sized = metadata(weights=[{"path": "model.skops", "format": "skops", "size_bytes": 5}])
    with pytest.raises(ckpt.CheckpointError, match="is 10 bytes, metadata says 5"):
        ckpt.parse_metadata(sized.to_json(), files={"model.skops": 10})
    with pytest.raises(ckpt.CheckpointError, match="not valid UTF-8 JSON"):
        ckpt.parse_metadata(b"{not json")
    with pytest.raises(ckpt.CheckpointError, match="must be a JSON object"):
        ckpt.parse_metadata(b"[1, 2]")
    escape = json.dumps(doc | {"weights": [{"path": "../x.skops", "format": "skops"}]}).encode()
    with pytest.raises(ckpt.CheckpointError, match="relative path inside the folder"):
        ckpt.parse_metadata(escape)


def test_a_checkpoint_is_written_once_and_read_back_checked(tmp_path):
    drive = LocalDrive(tmp_path)
    model, X = fitted()
    data = ckpt.dump_weights(model)
    folder = ckpt.folder_of("pricer", "run-1")
    meta = metadata(
        weights=[
            {
                "path": ckpt.WEIGHTS_FILE,
                "format": "skops",
                "sha256": ckpt.sha256_hex(data),
                "size_bytes": len(data),
            }
        ]
    )
    ckpt.write_checkpoint(drive, folder, weights=data, metadata=meta, extra_files={"a/b.txt": b"x"})
    assert (tmp_path / folder / "a" / "b.txt").read_bytes() == b"x"
    back, estimator = ckpt.read_checkpoint(drive, folder)
    assert back == meta
    np.testing.assert_array_equal(estimator.predict(X), model.predict(X))

    with pytest.raises(FileExistsError):
        ckpt.write_checkpoint(drive, folder, weights=data, metadata=meta)
    (tmp_path / folder / ckpt.WEIGHTS_FILE).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ckpt.CheckpointError, match="SHA-256 .* differs from the metadata's"):
        ckpt.read_checkpoint(drive, folder)
    with pytest.raises(ckpt.CheckpointError, match="not a safe folder name"):
        ckpt.folder_of("pricer", "../etc")
