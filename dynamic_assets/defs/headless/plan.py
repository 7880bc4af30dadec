"""What `dynamic-assets run` runs: the versions to bring to curated (`plan_ingest`) and the
versions an earlier run left short of their final state (`plan_forward`), on the database and the
drive of the settings (`settings_database`, `settings_drive`).

Planning is plain code: Dagster and the shell's modules are imported by the functions that
execute runs (`defs.headless.execute`), so that a `run` with nothing to do never loads them
(about 3 s of imports)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dynamic_assets.datasets import registry
from dynamic_assets.datasets.pipeline import outstanding
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive.base import Drive
from dynamic_assets.drive.discovery import Problem, VersionFolder, discover
from dynamic_assets.quality.states import VersionState, not_final
from dynamic_assets.settings import Settings


@dataclass
class IngestPlan:
    """The versions to bring to curated, the files still quarantined, the files and folders
    not taken (undeclared dataset, refused or passed-over file or folder), already recorded in
    `onedrive_ingest`, the files and versions deleted from the drive (`datasets.deletions`), and
    the datasets this configuration leaves out (`notes`: their files keep what was recorded)."""

    versions: list[VersionFolder]
    quarantined: list[dict]
    problems: list[Problem]
    deleted: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)


def settings_drive(settings: Settings) -> Drive:
    """The drive of these settings, as the code location's drive resource opens it
    (`defs.resources.DriveResource.get`), without Dagster: the local folder, or OneDrive through
    Graph (the process's shared `GraphDrive` for the same configuration, recording its sync
    events in the settings' database)."""
    od = settings.onedrive
    if od is None:
        from dynamic_assets.drive import LocalDrive

        return LocalDrive(settings.drive_root)
    from dynamic_assets.drive.graph import GraphConfig, graph_drive
    from dynamic_assets.drive.sync_events import recording

    secret = os.environ.get("ONEDRIVE_CLIENT_SECRET") if od.client_secret_set else None
    drive = graph_drive(
        GraphConfig.with_defaults(
            tenant_id=od.tenant_id,
            client_id=od.client_id,
            client_secret=secret or None,
            drive_id=od.drive_id,
            user=od.user,
            root=od.root,
            token_cache=str(od.token_cache),
            graph_url=od.graph_url,
            authority_host=od.authority_host,
            graph_scope=od.graph_scope,
        )
    )
    # Throttling and resyncs are recorded as the sensor's and the run workers' drive records them.
    return recording(drive, settings_database(settings))


def settings_database(settings: Settings) -> Database:
    """The database of these settings, as the code location's Postgres resource opens it:
    SUPABASE_DB_URL when set, else the embedded server in the home."""
    if settings.db_url_set:
        return Database(os.environ.get("SUPABASE_DB_URL"))
    return Database(None, pgdata=settings.pgdata)


def plan_ingest(
    db: Database,
    drive: Drive,
    decls: Declarations,
    *,
    dataset: str | None = None,
    version: str | None = None,
    run_all: bool = False,
) -> IngestPlan:
    """List the drive and decide what to run: every version whose files have not all reached
    curated (with `run_all`, every version with files). Every file or folder not taken is
    recorded: of an undeclared dataset, refused (`quarantined`), or passed over (`ignored`: a
    folder of a declared dataset that is not a version, a file outside a version folder). A
    dataset the configuration leaves out, whose files were recorded under its declaration, is a
    note, not a file refused."""
    found = discover(drive, decls, dataset=dataset, version=version)
    pending, quarantined = outstanding(db, found)
    if run_all:
        pending = [v for v in found.versions.values() if v.files or v.rejected]
    pending.sort(key=lambda v: (v.dataset, v.version))
    declared = set(decls.by_name())
    problems: list[Problem] = []
    notes: list[Problem] = []
    for p in found.problems:
        left_out = p.status == "ignored" and p.dataset not in declared
        (notes if left_out else problems).append(p)
    if problems:
        with db.connect() as conn:
            registry.record_problems(conn, problems)
    return IngestPlan(pending, quarantined, problems, found.deleted, notes)


# The states `advance_version` drives forward; the earlier ones are the ingest's
# (`pipeline.outstanding`: a version whose files have not all reached curated).
DRIVEN = ("unfingerprinted", "curated", "attested")


def plan_forward(
    db: Database,
    decls: Declarations,
    anchoring: bool,
    *,
    dataset: str | None = None,
    version: str | None = None,
    skip: set[tuple[str, str]] | frozenset = frozenset(),
) -> list[VersionState]:
    """The curated versions of declared datasets not in their final state (attested, or
    anchored with `anchoring`), but those in `skip` (run already)."""
    declared = {ds.name for ds in decls.datasets}
    with db.connect() as conn:
        left = not_final(conn, anchoring, dataset)
    return [
        s
        for s in left
        if s.state in DRIVEN
        and s.dataset in declared
        and (version is None or s.version == version)
        and (s.dataset, s.version) not in skip
    ]
