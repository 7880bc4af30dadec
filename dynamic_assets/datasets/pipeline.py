"""The steps of one dataset version, as plain functions: manifest, stage, curate.

Dagster assets and the command line call these; they hold no Dagster code, so they are tested
directly against the embedded Postgres. State passes between steps through Postgres (the
`onedrive_ingest` rows and the staging partition), never through local files.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from dynamic_assets.datasets import registry
from dynamic_assets.datasets.checks import Problem as ValueProblem
from dynamic_assets.datasets.curated import (
    Build,
    build_version,
    discard_build,
    recorded_build,
    staging_shortfall,
    swap_version,
)
from dynamic_assets.datasets.deletions import settle_deletions
from dynamic_assets.datasets.errors import PromotionError
from dynamic_assets.datasets.staging import FileChanged, FileLoad, SourceFile, load_version
from dynamic_assets.datasets.typed_build import TypedBuild, typed_build_possible
from dynamic_assets.db import Database
from dynamic_assets.db.connection import connect
from dynamic_assets.db.tables import (
    RAW_SCHEMA,
    partition_exists,
    partition_name,
    version_lock,
)
from dynamic_assets.declarations.model import Dataset, Declarations
from dynamic_assets.drive.base import Drive
from dynamic_assets.drive.discovery import (
    DATASETS_FOLDER,
    Discovery,
    Problem,
    VersionFolder,
    discover,
)
from dynamic_assets.formats.errors import LoadError


def one_step_at_a_time(step):
    """Run `step` (a function of `db`, `ds` and `version`) holding the version's step lock
    (`db.tables.version_lock`): two runs of one version, in any processes or machines, stage,
    check, curate and fingerprint it one step after the other, never side by side."""
    signature = inspect.signature(step)

    @functools.wraps(step)
    def locked(*args, **kwargs):
        given = signature.bind(*args, **kwargs).arguments
        with (
            given["db"].connect(autocommit=True) as held,
            version_lock(held, given["ds"].name, given["version"]),
        ):
            return step(*args, **kwargs)

    return locked


class VersionFailed(Exception):
    """A dataset version that did not go through; `failures` name each file and reason."""

    def __init__(self, dataset: str, version: str, failures: list[tuple[str, str]]):
        self.dataset = dataset
        self.version = version
        self.failures = failures
        lines = [f"{dataset} {version}: {len(failures)} problem(s)"]
        lines += [f"  {path}: {reason}" for path, reason in failures]
        super().__init__("\n".join(lines))


@dataclass
class Manifest:
    folder: VersionFolder
    file_ids: dict[str, int] = field(default_factory=dict)  # path -> onedrive_ingest id

    @property
    def rows(self) -> list[dict]:
        return [
            {
                "path": item.path,
                "format": fmt,
                "bytes": item.size,
                "etag": item.etag,
                "modified": item.modified_at.isoformat(),
            }
            for item, fmt in self.folder.files
        ]


def record_manifest(
    db: Database,
    drive: Drive,
    decls: Declarations,
    ds: Dataset,
    version: str,
    *,
    run_id: str | None = None,
) -> Manifest:
    """List the version folder and record each file in `onedrive_ingest`; refuse bad files."""
    step = registry.EtlStep(run_id, ds.name, version, "manifest")
    found = discover(drive, decls, dataset=ds.name, version=version)
    folder = found.versions[f"{ds.name}/{version}"]
    # What the folder holds that is refused, and (from discovery) an empty folder.
    refused = folder.rejected + [p for p in found.problems if p.version == version]
    failures = [(p.path, p.reason) for p in refused if p.status == "quarantined"]
    manifest = Manifest(folder)
    with db.connect() as conn:
        for item, fmt in folder.files:
            manifest.file_ids[item.path] = registry.record_file(conn, ds.name, version, item, fmt)
        registry.record_problems(conn, refused)
        if failures:
            registry.hold_back(conn, ds.name, version, [p for p, _ in failures])
            step.record(
                conn,
                "failed",
                files=len(folder.files) + len(folder.rejected),
                error="; ".join(f"{p}: {r}" for p, r in failures)[:4000],
            )
    if failures:
        raise VersionFailed(ds.name, version, failures)
    return manifest


@dataclass
class Staged:
    manifest: Manifest
    loads: list[FileLoad]
    seconds: float
    build: Build | None = None  # the typed table built beside the staging (CSV), if it was

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.loads)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.loads)


@one_step_at_a_time
def stage(
    db: Database,
    drive: Drive,
    decls: Declarations,
    ds: Dataset,
    version: str,
    *,
    run_id: str | None = None,
) -> Staged:
    """Stream every file of the version into its `ai_raw` partition (all or nothing)."""
    if ds.expectations:
        from dynamic_assets.quality import judge

        judge.prepare()  # Great Expectations loads in its own process while the files stream
    step = registry.EtlStep(run_id, ds.name, version, "stage")
    manifest = record_manifest(db, drive, decls, ds, version, run_id=run_id)
    sources = [
        SourceFile(
            manifest.file_ids[item.path],
            item.path,
            fmt,
            functools.partial(drive.open, item.path),
            listed=item,
            stat=functools.partial(drive.stat, item.path),
        )
        for item, fmt in manifest.folder.files
    ]
    typed = TypedBuild(db.uri, ds, version) if typed_build_possible(ds) else None
    with db.connect(autocommit=True) as conn, _closing(typed):
        try:
            loads = load_version(conn, ds, version, sources, typed=typed)
        except LoadError as exc:
            bad = manifest.file_ids.get(exc.path)
            # A file that changed while it was read stays pending: the next run takes it as the
            # drive then lists it. Any other refusal quarantines this content of the file.
            status = "pending" if isinstance(exc, FileChanged) else "quarantined"
            with conn.transaction():
                if bad is not None:
                    registry.mark_files(conn, [bad], status, error=exc.message)
                if status == "quarantined":
                    registry.hold_back(conn, ds.name, version, [exc.path])
                step.record(conn, "failed", files=len(sources), error=exc.message)
            raise VersionFailed(ds.name, version, [(exc.path, exc.located)]) from exc
        with conn.transaction():
            for load in loads:
                registry.mark_loaded(
                    conn, load.file_id, rows=load.rows, sha256=load.sha256, size=load.bytes
                )
            step.record(
                conn,
                "succeeded",
                files=len(loads),
                rows_loaded=sum(f.rows for f in loads),
                bytes_=sum(f.bytes for f in loads),
            )
        build = typed.commit([f.file_id for f in loads]) if typed is not None else None
    return Staged(manifest, loads, step.seconds, build)


@contextmanager
def _closing(typed: TypedBuild | None) -> Iterator[None]:
    try:
        yield
    finally:
        if typed is not None:
            typed.close()


@dataclass
class Curated:
    rows: int
    seconds: float
    files: list[dict]
    dataset_id: int
    fingerprint: Any = None  # what `fingerprint` returned, stored with the version


@one_step_at_a_time
def curate(
    db: Database,
    drive_kind: str,
    ds: Dataset,
    version: str,
    *,
    run_id: str | None = None,
    fingerprint: Callable[[psycopg.Connection, str, list[dict]], Any] | None = None,
    store: Callable[[psycopg.Connection, Any], object] | None = None,
) -> Curated:
    """Swap the typed table built for the staged version into `ai_curated` and register it, in
    one transaction.

    The table the staging step built and checked is used when it was built from exactly the
    version's staged files; else it is built again from staging. `fingerprint(conn, table,
    files)` computes the version's fingerprint on that table before the swap; `store(conn, fp)`
    writes it inside the swap's transaction, so the version is never curated without it."""
    step = registry.EtlStep(run_id, ds.name, version, "curate")
    with db.connect() as conn:
        if not partition_exists(conn, RAW_SCHEMA, partition_name(ds.name, version)):
            raise VersionFailed(
                ds.name, version, [(f"ai_raw.{ds.name}", f"version {version} has not been staged")]
            )
        recorded = registry.staged_files(conn, ds.name, version)
    ids = [f["id"] for f in recorded]
    out: dict = {}

    def register(conn, rows: int) -> None:
        registry.settle_curated(conn, ds.name, version, ids)
        files = registry.version_files(conn, ds.name, version, ids)
        out["files"] = files
        out["dataset_id"] = registry.upsert_dataset(
            conn,
            ds,
            version,
            folder=f"datasets/{ds.name}/{version}",
            files=files,
            rows=rows,
            drive_kind=drive_kind,
        )
        if store is not None and out.get("fingerprint") is not None:
            store(conn, out["fingerprint"])
        step.record(conn, "succeeded", files=len(files), rows_loaded=rows)

    with db.connect(autocommit=True) as conn:
        try:
            shortfall = staging_shortfall(conn, ds, version, recorded)
            if shortfall:
                raise PromotionError(
                    shortfall,
                    [{"kind": "staging_incomplete", "message": shortfall, "files": recorded}],
                )
            build = recorded_build(conn, ds, version, recorded) or build_version(
                conn, ds, version, recorded=recorded
            )
            if fingerprint is not None:
                files = registry.version_files(conn, ds.name, version, ids)
                out["fingerprint"] = fingerprint(conn, build.table, files)
            result = swap_version(conn, ds, version, build, after_swap=register)
        except PromotionError as exc:
            with conn.transaction():
                step.record(
                    conn,
                    "failed",
                    files=len(ids),
                    error=str(exc),
                    rows_rejected=sum(p.get("count", 0) for p in exc.problems),
                    checks={"problems": exc.problems},
                )
            raise VersionFailed(ds.name, version, [(f"ai_raw.{ds.name}", str(exc))]) from exc
    return Curated(
        result.rows,
        build.seconds + result.seconds,
        out["files"],
        out["dataset_id"],
        out.get("fingerprint"),
    )


def outstanding(db: Database, found: Discovery) -> tuple[list[VersionFolder], list[dict]]:
    """Versions in the drive whose current files have not all reached curated, or that lost a
    file since they were curated (`deletions.settle_deletions`, which also records and reports
    in `found.deleted` the files gone from the listing), and files that are quarantined
    (unchanged since they failed, so they wait for a corrected file).

    Files of a dataset the declarations leave out, recorded before under its declaration, keep
    their rows (`registry.record_problem`): `found.problems` names such a dataset once, as
    passed over, instead of each of its files as not taken."""
    with db.connect() as conn:
        recurate = settle_deletions(conn, found)
        rows = conn.execute(
            "SELECT drive_item_id, etag, status, path, error, dataset, version FROM public.onedrive_ingest"
        ).fetchall()
    state = {(r[0], r[1]): r for r in rows}
    _settle_left_out(found, state)
    pending: list[VersionFolder] = []
    quarantined: list[dict] = []
    for vf in found.versions.values():
        statuses = []
        for item, _ in vf.files:
            row = state.get((item.item_id, item.etag))
            statuses.append(row[2] if row else None)
            if row and row[2] == "quarantined":
                quarantined.append(
                    {"dataset": vf.dataset, "version": vf.version, "path": row[3], "error": row[4]}
                )
        for p in vf.rejected:
            if p.item is not None:
                row = state.get((p.item.item_id, p.item.etag))
                if row and row[2] == "quarantined":
                    quarantined.append(
                        {
                            "dataset": vf.dataset,
                            "version": vf.version,
                            "path": row[3],
                            "error": row[4],
                        }
                    )
                    statuses.append("quarantined")
                    continue
            statuses.append(None)
        if "quarantined" in statuses:
            continue
        if not vf.files and not vf.rejected:
            continue
        if any(s != "curated" for s in statuses) or vf.key in recurate:
            pending.append(vf)
    return pending, quarantined


def _settle_left_out(found: Discovery, state: dict[tuple[str, str], tuple]) -> None:
    """Replace the `undeclared` problems of files already recorded otherwise by one `ignored`
    problem per dataset."""
    left_out: set[str] = set()
    kept: list[Problem] = []
    for p in found.problems:
        row = state.get((p.item.item_id, p.item.etag)) if p.item is not None else None
        if p.status == "undeclared" and p.dataset and row is not None and row[2] != "undeclared":
            left_out.add(p.dataset)
        else:
            kept.append(p)
    for name in sorted(left_out):
        kept.append(
            Problem(
                f"{DATASETS_FOLDER}/{name}",
                f"dataset {name!r} is not declared in this configuration; its files keep "
                "what was recorded under its declaration",
                "ignored",
                name,
            )
        )
    found.problems = kept


@dataclass
class Validation:
    """Everything checked on a staged version before promotion."""

    problems: list  # datasets.checks.Problem: values that do not fit the declaration
    expectations: list  # quality.expectations.ExpectationOutcome
    schema_change: object  # quality.schema.SchemaChange
    quarantined: dict[str, str] = field(default_factory=dict)  # path -> reason
    build: Build | None = None  # the typed table the checks judged, kept for curate

    @property
    def blocking_failures(self) -> list[str]:
        out = [p.message for p in self.problems]
        out += [o.message for o in self.expectations if not o.success and o.severity == "error"]
        return out

    @property
    def untraced_failures(self) -> list[str]:
        """The blocking failures traced to no file (`quarantined` holds the others, per file)."""
        out = [p.message for p in self.problems if not p.file_ids]
        out += [
            o.message
            for o in self.expectations
            if not o.success and o.severity == "error" and not o.file_ids
        ]
        return out


@one_step_at_a_time
def validate(
    db: Database,
    ds: Dataset,
    version: str,
    staged: Staged | None = None,
    *,
    run_id: str | None = None,
) -> Validation:
    """Build the typed table of a staged version and run the blocking checks on it, record
    them, quarantine the files at fault.

    `rows_castable` is the build itself: Postgres casts every value once, enforces the
    nullability, the primary key and the declared refusals, and only when it refuses a row is
    the text staging searched for what and where (`staging_problems`). The expectations judge
    the typed table. A version whose blocking checks fail keeps no typed table."""
    from psycopg.types.json import Jsonb

    from dynamic_assets.provenance.fingerprint import BuildDigest
    from dynamic_assets.quality import schema as schema_mod
    from dynamic_assets.quality.judge import Judging

    started = time.perf_counter()
    parquet_types: dict[str, str] = {}
    for load in staged.loads if staged else []:
        for name, typ in (load.source_types or {}).items():
            parquet_types.setdefault(name, typ)
    with db.connect(autocommit=True) as conn:
        problems, build = _build_typed(conn, ds, version, staged.build if staged else None)
    # Without a typed table (values that do not cast), the expectations judge the staging cast
    # on the fly, a value that does not cast read as NULL (`rows_castable` reports it).
    judging = Judging(db.uri, ds, version, build.table if build else None)
    # Meanwhile: the content digest of the typed table for the fingerprint (the table is not
    # written again before its swap) on a connection and thread of its own, kept only once the
    # blocking checks passed, and on this connection the schema observed.
    digest = None
    if build is not None:
        digest = BuildDigest(connect(db.uri, autocommit=True), ds, version, build.table)
    try:
        with db.connect() as conn:
            observed = schema_mod.observe(conn, ds, version, parquet_types or None)
            change = schema_mod.compare(conn, ds.name, version, observed)
            schema_mod.store(conn, ds.name, version, observed)
        outcomes = judging.result()
    except BaseException:
        if digest is not None:
            digest.cancel()
        raise
    if digest is not None:
        if any(not o.success and o.severity == "error" for o in outcomes):
            digest.cancel()
        else:
            digest.keep()

    with db.connect() as conn:
        paths = dict(
            conn.execute(
                "SELECT path, id FROM public.onedrive_ingest WHERE dataset = %s AND version = %s",
                (ds.name, version),
            ).fetchall()
        )
        by_id = {v: k for k, v in paths.items()}
        # Each file at fault is quarantined with what that file holds: its own count and first
        # example of each failure. A failed check quarantines the files its unexpected rows were
        # traced to; one whose rows are not traced to files (a table-level check, or
        # `o.unattributed`) blames no file: it fails the version, which stays outstanding with
        # every file as it is.
        reasons: dict[int, list[str]] = {}
        for p in problems:
            for fid in p.file_ids:
                path = by_id.get(fid)
                reasons.setdefault(fid, []).append(
                    p.by_file.get(path, p.message) if path else p.message
                )
        for o in outcomes:
            if not o.success and o.severity == "error":
                for fid in o.file_ids:
                    message = o.message_in_file(by_id.get(fid, f"file #{fid}"))
                    if message not in reasons.get(fid, []):
                        reasons.setdefault(fid, []).append(message)
        quarantined: dict[str, str] = {}
        for fid, msgs in reasons.items():
            reason = "; ".join(msgs)[:4000]
            registry.mark_files(conn, [fid], "quarantined", error=reason)
            quarantined[by_id.get(fid, f"file #{fid}")] = reason
        registry.hold_back(conn, ds.name, version, quarantined)
        checks = {
            "rows_castable": {"passed": not problems, "problems": [p.message for p in problems]},
            **{
                o.check_name: {
                    "passed": o.success,
                    "severity": o.severity,
                    "unexpected_count": o.unexpected_count,
                    "message": o.message,
                }
                for o in outcomes
            },
            "schema_unchanged": {"passed": not change.changed, "message": change.message},
        }
        rejected = sum(p.count for p in problems) + sum(
            o.unexpected_count or 0 for o in outcomes if not o.success and o.severity == "error"
        )
        conn.execute(
            """UPDATE public.etl_runs SET checks = %s, rows_rejected = %s, checks_s = %s,
                      status = CASE WHEN %s THEN 'failed' ELSE status END,
                      error = CASE WHEN %s THEN %s ELSE error END
                WHERE id = (SELECT max(id) FROM public.etl_runs
                             WHERE dataset = %s AND version = %s AND step = 'stage' AND run_id IS NOT DISTINCT FROM %s)""",
            (
                Jsonb(checks),
                rejected,
                time.perf_counter() - started,
                bool(reasons) or bool(problems),
                bool(problems) or any(not o.success and o.severity == "error" for o in outcomes),
                "blocking checks failed",
                ds.name,
                version,
                run_id,
            ),
        )
    result = Validation(problems, outcomes, change, quarantined, build)
    if build is not None and result.blocking_failures:
        with db.connect(autocommit=True) as conn:
            discard_build(conn, ds, version)
        result.build = None
    return result


def _build_typed(
    conn: psycopg.Connection, ds: Dataset, version: str, beside: Build | None = None
) -> tuple[list[ValueProblem], Build | None]:
    """The typed table of the staged version, or what keeps it from being built. `beside`: the
    one built while the version staged, taken while it is still the one recorded."""
    if (
        beside is not None
        and conn.execute(
            "SELECT 1 FROM public.curated_builds WHERE dataset = %s AND version = %s "
            "AND table_name = %s",
            (ds.name, version, beside.table),
        ).fetchone()
    ):
        return [], beside
    try:
        return [], build_version(conn, ds, version)
    except PromotionError as exc:
        fields = set(ValueProblem.__dataclass_fields__)
        located = [ValueProblem(**p) for p in exc.problems if set(p) == fields]
        if located and len(located) == len(exc.problems):
            return located, None
        return [ValueProblem("build", "", 0, str(exc))], None
