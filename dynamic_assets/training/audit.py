"""Checkpoint folders in the drive, pushed by the pipeline or by hand, checked for traceability.

`scan_checkpoints` lists `model-checkpoints/` (listing only) and groups the files by run folder
(`model-checkpoints/<model>/<run-id>/`), each with a digest of its listing. `inspect_folder`
reads one folder's `metadata.json` (at most 1 MiB) and says whether the checkpoint can be traced
to curated data: its metadata is present and valid, its weights are in the folder, and the
fingerprint it names is one the registry knows for that dataset version (the version's current
fingerprint, or one that was attested). `record_verdict` registers a traceable checkpoint in
`models` and every folder, traceable or not, in `model_checkpoints`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from dynamic_assets.drive.base import Drive, DriveItem
from dynamic_assets.training import records
from dynamic_assets.training.checkpoint import (
    CHECKPOINTS_FOLDER,
    MAX_METADATA_BYTES,
    METADATA_FILE,
    SAFE_NAME,
    CheckpointError,
    CheckpointMetadata,
    parse_metadata,
)

# A folder without metadata.json is reported only once its newest file is this old: uploads of
# the weights and of the metadata may arrive minutes apart.
METADATA_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class CheckpointFolder:
    """One run folder as listed."""

    model: str
    run_id: str
    files: dict[str, DriveItem]  # path relative to the folder -> item

    @property
    def path(self) -> str:
        return f"{CHECKPOINTS_FOLDER}/{self.model}/{self.run_id}"

    @property
    def digest(self) -> str:
        h = hashlib.sha1()
        for rel, item in sorted(self.files.items()):
            h.update(f"{rel}\x00{item.etag}\x00{item.size}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:16]

    @property
    def newest(self) -> datetime | None:
        return max((i.modified_at for i in self.files.values()), default=None)


def scan_checkpoints(drive: Drive) -> tuple[list[CheckpointFolder], list[str]]:
    """The run folders under model-checkpoints/ and the paths that are not inside one."""
    folders: dict[tuple[str, str], dict[str, DriveItem]] = {}
    stray: list[str] = []
    for item in drive.list_tree(CHECKPOINTS_FOLDER):
        parts = item.path.split("/")
        if len(parts) < 2 or parts[0] != CHECKPOINTS_FOLDER:
            continue
        if len(parts) == 2 or (len(parts) == 3 and not item.is_folder):
            if not item.is_folder:  # a file beside the model or run folders
                stray.append(item.path)
            continue
        files = folders.setdefault((parts[1], parts[2]), {})
        if len(parts) > 3 and not item.is_folder:
            files["/".join(parts[3:])] = item
    return [CheckpointFolder(m, r, files) for (m, r), files in sorted(folders.items())], stray


@dataclass(frozen=True)
class Verdict:
    """Whether a checkpoint folder can be traced to curated data, and why not."""

    folder: CheckpointFolder
    status: str  # registered | missing_metadata | invalid_metadata | unknown_fingerprint
    problem: str | None = None
    metadata: CheckpointMetadata | None = None
    known_as: str | None = None  # current | attested
    extra: dict = field(default_factory=dict)

    @property
    def traceable(self) -> bool:
        return self.status == "registered"


def inspect_folder(
    drive: Drive,
    conn: psycopg.Connection,
    folder: CheckpointFolder,
    *,
    now: datetime | None = None,
    grace: timedelta = METADATA_GRACE,
) -> Verdict | None:
    """The verdict on one folder, or None while it may still be uploading (no metadata.json yet
    and its newest file younger than `grace`)."""
    now = now or datetime.now(UTC)
    if not SAFE_NAME.match(folder.model) or not SAFE_NAME.match(folder.run_id):
        return Verdict(
            folder,
            "invalid_metadata",
            f"{folder.path}: the model and run folder names must be letters, digits, '.', '_', '-'",
        )
    if METADATA_FILE not in folder.files:
        newest = folder.newest
        if newest is not None and now - newest < grace:
            return None
        what = "is empty" if not folder.files else f"has {len(folder.files)} file(s) but"
        return Verdict(
            folder,
            "missing_metadata",
            f"{folder.path} {what} no {METADATA_FILE}: nothing says which data it was trained on",
        )
    try:
        with drive.open(f"{folder.path}/{METADATA_FILE}") as f:
            raw = f.read(MAX_METADATA_BYTES + 1)
        meta = parse_metadata(
            raw,
            model=folder.model,
            run_id=folder.run_id,
            files={rel: item.size for rel, item in folder.files.items()},
        )
    except CheckpointError as exc:
        return Verdict(folder, "invalid_metadata", f"{folder.path}: {exc}")
    except OSError as exc:
        return Verdict(
            folder, "invalid_metadata", f"{folder.path}: cannot read {METADATA_FILE}: {exc}"
        )
    known = records.fingerprint_known(
        conn, meta.dataset, meta.dataset_version, meta.data_fingerprint
    )
    if known is None:
        current = records.registered_fingerprint(conn, meta.dataset, meta.dataset_version)
        registered = (
            f"the registry's fingerprint of that version is {current}"
            if current
            else f"the registry has no curated, fingerprinted {meta.dataset} {meta.dataset_version}"
        )
        return Verdict(
            folder,
            "unknown_fingerprint",
            f"{folder.path}: trained on {meta.dataset} {meta.dataset_version} with fingerprint "
            f"{meta.data_fingerprint}, which the registry does not know ({registered}); it "
            "cannot be traced to curated data",
            metadata=meta,
        )
    return Verdict(folder, "registered", metadata=meta, known_as=known)


def record_verdict(
    conn: psycopg.Connection, verdict: Verdict, drive_kind: str
) -> tuple[int | None, bool]:
    """Write the verdict: a `models` row for a traceable checkpoint (an existing row, e.g. the
    pipeline's own, is kept as it is) and the folder's `model_checkpoints` row.

    Returns the `models` row id (None if not traceable) and whether it was new.
    """
    folder = verdict.folder
    meta = verdict.metadata
    model_id, new = None, False
    if verdict.traceable and meta is not None:
        details = meta.model_dump(mode="json", by_alias=True, exclude_none=True)
        details.update(
            registered_by="checkpoint_sensor",
            fingerprint_known_as=verdict.known_as,
            checkpoint=folder.path,
        )
        model_id, new = records.register_model(
            conn,
            name=meta.model,
            version=meta.run_id,
            dataset_id=records.dataset_id(conn, meta.dataset, meta.dataset_version),
            framework=meta.framework,
            performance_metrics=meta.metrics,
            deployment_locations={"drive": folder.path, "drive_kind": drive_kind},
            metadata=details,
            replace=False,
        )
    records.record_checkpoint(
        conn,
        path=folder.path,
        model=folder.model,
        run_id=folder.run_id,
        status=verdict.status,
        problem=verdict.problem,
        dataset=meta.dataset if meta else None,
        dataset_version=meta.dataset_version if meta else None,
        data_fingerprint=meta.data_fingerprint if meta else None,
        model_id=model_id,
        listing_digest=folder.digest,
    )
    return model_id, new
