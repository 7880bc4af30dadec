"""The plain outcome records of `dynamic-assets run` (`Ingested`, `Trained`), and what a finished
run says for them: its located failures (`failures_of`), the curated row count
(`curated_rows`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg


@dataclass
class Ingested:
    """The outcome of one ingest run: `curated`, `failed` with (path, reason) per failure, or
    `another run` (the version is another run's, `note` says which)."""

    dataset: str
    version: str
    files: int = 0
    rows: int = 0
    seconds: float = 0.0
    status: str = "pending"
    failures: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""  # one line on a version left to another run
    left: str = ""  # the state an earlier run left the version in (`advance_version`)


@dataclass
class Trained:
    """The outcome of one training run."""

    model: str
    version: str
    status: str  # trained | up to date | skipped | failed
    metric: str = ""
    value: float | None = None
    seconds: float = 0.0
    detail: str = ""
    mirror_failures: list[str] = field(default_factory=list)  # per S3 platform (`mirrors.models`)


def failures_of(result: dg.ExecuteInProcessResult) -> list[tuple[str, str]]:
    """(path, reason) for each failure a failed step carries in its `failures` metadata (JSON:
    {path, line, row, column, reason}, see `defs.datasets.assets.located_failures`), the reason
    led by its line or row and column. Without such metadata, each blocking check that failed,
    with its description, and the message of any other failed step (a step stopped by a failed
    blocking check says no more than the check)."""
    import dagster as dg

    located_found: list[tuple[str, str]] = []
    other: list[tuple[str, str]] = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            meta = (data.user_failure_data.metadata if data.user_failure_data else {}) or {}
            entry = meta.get("failures")
            located = entry.value if isinstance(entry, dg.JsonMetadataValue) else None
            if isinstance(located, list) and located:
                located_found += [(str(f["path"]), _reason(f)) for f in located]
            elif not (data.error and data.error.cls_name == "DagsterAssetCheckFailedError"):
                message = data.error.message if data.error else "step failed"
                other.append((event.step_key or "run", " ".join(message.split())))
    if located_found:
        return located_found + other
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            where = f"{check.asset_key.to_user_string()} check {check.check_name}"
            other.append((where, check.description or "failed"))
    return other


def _reason(failure: dict) -> str:
    """`line 3: column price: reason`, with the parts the failure names."""
    parts = [
        f"{name} {failure[name]}"
        for name in ("line", "row", "column")
        if failure.get(name) is not None
    ]
    return ": ".join([*parts, str(failure["reason"])])


def curated_rows(result: dg.ExecuteInProcessResult, dataset: str) -> int:
    """The row count of the run's curated materialization."""
    from dynamic_assets.defs.datasets.assets import curated_key

    for event in result.all_events:
        mat = (
            event.step_materialization_data.materialization
            if event.is_step_materialization
            else None
        )
        if mat is not None and mat.asset_key == curated_key(dataset):
            value = metadata_number(mat.metadata.get("dagster/row_count"))
            return int(value) if value is not None else 0
    return 0


def metadata_number(entry: dg.MetadataValue | None) -> float | None:
    """The number a materialization's int or float metadata entry holds, else None."""
    import dagster as dg

    if isinstance(entry, dg.IntMetadataValue | dg.FloatMetadataValue):
        return entry.value
    return None
