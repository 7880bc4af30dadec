"""Checkpoints in the drive: `model-checkpoints/<model>/<run-id>/` holds the weights, the
mirrored MLflow artifacts and `metadata.json`.

Weights are written with skops (never pickle) and loaded back only if every type the file needs
is a class of scikit-learn, NumPy or SciPy (or a type the caller names): skops refuses any other
type, so a checkpoint dropped by anyone cannot run code on load. `metadata.json` follows
`CheckpointMetadata` (schema `dynamic-assets/checkpoint/v1`): framework and version, git commit,
hyperparameters, metrics, dataset, version and fingerprint, and the MLflow run when there is one.
It is written last, so a folder with a valid `metadata.json` is complete.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dynamic_assets.drive.base import Drive, DriveItem

CHECKPOINTS_FOLDER = "model-checkpoints"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.skops"
SCHEMA: Final = "dynamic-assets/checkpoint/v1"
MAX_METADATA_BYTES = 1 << 20
# Packages whose classes a skops checkpoint may instantiate on load.
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(ValueError):
    """A checkpoint folder or file is not usable; the message says which and why."""


class UntrustedCheckpoint(CheckpointError):
    """The weights need types that are not trusted to load."""


def folder_of(model: str, run_id: str) -> str:
    """The drive folder of one run's checkpoint."""
    for what, name in (("model", model), ("run id", run_id)):
        if not SAFE_NAME.match(name):
            raise CheckpointError(
                f"{what} {name!r} is not a safe folder name (letters, digits, '.', '_', '-')"
            )
    return f"{CHECKPOINTS_FOLDER}/{model}/{run_id}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class WeightsFile(BaseModel):
    """One weights file of the checkpoint, relative to its folder."""

    model_config = ConfigDict(extra="forbid")

    path: str
    format: str = Field(min_length=1)  # skops, safetensors, onnx, ...
    sha256: str | None = None
    size_bytes: int | None = Field(default=None, ge=0)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        parts = v.split("/")
        if not v or v.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"weights path {v!r} must be a relative path inside the folder")
        return v

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not SHA256.match(v):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return v


class CheckpointMetadata(BaseModel):
    """`metadata.json` of a checkpoint (schema dynamic-assets/checkpoint/v1).

    Required for any checkpoint, pushed by the pipeline or by hand: model, run_id (the folder
    names), framework and its version, the weights files, hyperparameters, metrics, the dataset,
    version and fingerprint trained on, and the git commit of the training code. Other fields
    are kept as they are.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_: Literal["dynamic-assets/checkpoint/v1"] = Field(alias="schema", default=SCHEMA)
    model: str
    run_id: str
    created_at: datetime
    framework: str = Field(min_length=1)
    framework_version: str = Field(min_length=1)
    weights: list[WeightsFile] = Field(min_length=1)
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    dataset: str = Field(min_length=1)
    dataset_version: str = Field(min_length=1)
    data_fingerprint: str
    git_commit: str = Field(min_length=1)
    estimator: str | None = None
    features: list[str] | None = None
    target: str | None = None
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    mlflow_model_uri: str | None = None
    dagster_run_id: str | None = None
    config_hash: str | None = None
    trained_by: str = "hand"

    @field_validator("model", "run_id")
    @classmethod
    def _safe(cls, v: str) -> str:
        if not SAFE_NAME.match(v):
            raise ValueError(f"{v!r} is not a safe folder name (letters, digits, '.', '_', '-')")
        return v

    @field_validator("data_fingerprint")
    @classmethod
    def _fingerprint(cls, v: str) -> str:
        if not SHA256.match(v):
            raise ValueError("must be the dataset version's fingerprint: 64 lowercase hex digits")
        return v

    def to_json(self) -> bytes:
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()


def _errors(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(document)"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def parse_metadata(
    raw: bytes,
    *,
    model: str | None = None,
    run_id: str | None = None,
    files: Mapping[str, int] | None = None,
) -> CheckpointMetadata:
    """Validate `metadata.json` bytes of the folder `model-checkpoints/<model>/<run_id>/`.

    `files` (path relative to the folder -> size), when given, must hold every weights file the
    metadata lists, with the listed size. Raises CheckpointError naming every problem.
    """
    if len(raw) > MAX_METADATA_BYTES:
        raise CheckpointError(f"{METADATA_FILE} is {len(raw):,} bytes; at most 1 MiB is read")
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{METADATA_FILE} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{METADATA_FILE} must be a JSON object, not {type(doc).__name__}")
    try:
        meta = CheckpointMetadata.model_validate(doc)
    except ValidationError as exc:
        raise CheckpointError(f"{METADATA_FILE} does not fit {SCHEMA}: {_errors(exc)}") from None
    problems = []
    if model is not None and meta.model != model:
        problems.append(f"model is {meta.model!r} but the folder is for {model!r}")
    if run_id is not None and meta.run_id != run_id:
        problems.append(f"run_id is {meta.run_id!r} but the folder is {run_id!r}")
    if files is not None:
        for w in meta.weights:
            if w.path not in files:
                problems.append(f"weights file {w.path} is not in the folder")
            elif w.size_bytes is not None and files[w.path] != w.size_bytes:
                problems.append(
                    f"weights file {w.path} is {files[w.path]:,} bytes, metadata says "
                    f"{w.size_bytes:,}"
                )
    if problems:
        raise CheckpointError(f"{METADATA_FILE}: " + "; ".join(problems))
    return meta


def dump_weights(estimator: Any) -> bytes:
    """The estimator in the skops format (no pickle), deflate-compressed."""
    import zipfile

    import skops.io as sio

    return sio.dumps(estimator, compression=zipfile.ZIP_DEFLATED)


def _resolve_trusted(name: str) -> bool:
    """Whether `name` (module.Class) is a class defined in one of the trusted packages."""
    module, _, attr = name.rpartition(".")
    if not module or module.split(".")[0] not in TRUSTED_PACKAGES:
        return False
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and obj.__module__.split(".")[0] in TRUSTED_PACKAGES


def trusted_types(data: bytes, extra: Iterable[str] = ()) -> list[str]:
    """The types beyond skops' defaults that these weights need, once checked as trusted.

    A type is trusted if it is a class defined in scikit-learn, NumPy or SciPy, or is named in
    `extra`. Raises UntrustedCheckpoint listing any other type.
    """
    import skops.io as sio

    extra = set(extra)
    needed = sio.get_untrusted_types(data=data)
    refused = [t for t in needed if t not in extra and not _resolve_trusted(t)]
    if refused:
        raise UntrustedCheckpoint(
            f"the weights need type(s) that are not trusted to load: {', '.join(refused)}; only "
            f"classes of {', '.join(TRUSTED_PACKAGES)} load by default (pass trusted types "
            "explicitly if you have checked where the file came from)"
        )
    return needed


def load_weights(data: bytes, *, extra_trusted: Sequence[str] = ()) -> Any:
    """Load skops weights, trusting only the types `trusted_types` accepts."""
    import skops.io as sio

    return sio.loads(data, trusted=trusted_types(data, extra_trusted))


def write_checkpoint(
    drive: Drive,
    folder: str,
    *,
    weights: bytes,
    metadata: CheckpointMetadata,
    extra_files: Mapping[str, bytes] | None = None,
) -> list[DriveItem]:
    """Write the weights, the extra files (e.g. the MLflow mirror) and, last, `metadata.json`.

    Refuses to overwrite a checkpoint: a run folder is written once.
    """
    written = [drive.write_bytes(f"{folder}/{WEIGHTS_FILE}", weights)]
    for rel, data in sorted((extra_files or {}).items()):
        written.append(drive.write_bytes(f"{folder}/{rel}", data))
    written.append(drive.write_bytes(f"{folder}/{METADATA_FILE}", metadata.to_json()))
    return written


def read_checkpoint(
    drive: Drive, folder: str, *, extra_trusted: Sequence[str] = ()
) -> tuple[CheckpointMetadata, Any]:
    """Read a skops checkpoint back: its metadata and the estimator, checking each weights
    file's SHA-256 against the metadata first."""
    with drive.open(f"{folder}/{METADATA_FILE}") as f:
        raw = f.read(MAX_METADATA_BYTES + 1)
    model, run_id = folder.rstrip("/").split("/")[-2:]
    meta = parse_metadata(raw, model=model, run_id=run_id)
    skops_files = [w for w in meta.weights if w.format == "skops"]
    if not skops_files:
        raise CheckpointError(f"{folder}: no skops weights listed in {METADATA_FILE}")
    w = skops_files[0]
    with drive.open(f"{folder}/{w.path}") as f:
        data = f.read()
    if w.sha256 and sha256_hex(data) != w.sha256:
        raise CheckpointError(
            f"{folder}/{w.path}: SHA-256 {sha256_hex(data)} differs from the metadata's {w.sha256}"
        )
    return meta, load_weights(data, extra_trusted=extra_trusted)


def now_utc() -> datetime:
    return datetime.now(UTC)
