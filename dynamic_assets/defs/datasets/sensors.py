"""The drive sensor and the hourly reconcile schedule.

The sensor lists the drive (no downloads), keeps one short digest per version folder in a
compressed cursor, and for each version whose file set changed registers the version as a
dynamic partition and requests one run keyed by (dataset, version, file-set digest), so repeated
ticks never start duplicate runs. That run of `ingest_<dataset>` stages the version
(`staging_keys`); when a run of that job succeeds (the sensor's, the reconcile's, or one of a
backfill or launch from the UI), the curate sensor requests `curate_<dataset>` for its version:
curated, fingerprint and attestation (`curating_keys`). A version failed at staging leaves them
missing in the UI, not failed. Files it will not take (undeclared dataset, unsafe name,
unknown format, empty version folder) are recorded in `onedrive_ingest` and named in the log, and
so are recorded files the listing no longer holds (`deleted`, see `datasets.deletions`).

A drive with a change feed (OneDrive through Microsoft Graph) is read with `delta` instead: the
cursor is the feed's deltaLink (`{"delta": <link>}`; `"full": 1` while a first listing or a resync
continues over several ticks), only the version folders the feed names are listed, the same run
keys are requested, deleted files are marked `deleted` (see `dynamic_assets.drive.changes`).

Every tick, and every reconcile, also requests a run for each curated version an earlier run
left short of its final state (`quality.states`): its ingest job for a version without
fingerprint (the curate sensor follows it), its attestation asset only, in its curate job, for
one not attested (or not anchored, with TON anchoring). The sensor's run key names the state and
when it was entered, so it asks once per state; the hourly schedules' (`hourly_reconcile_*` for
the ingest job, `hourly_attest_*` for the attestation) name the hour too, so a run that failed is
tried again each hour.
"""

import base64
import hashlib
import json
import zlib

import dagster as dg

from dynamic_assets.datasets import registry
from dynamic_assets.datasets.deletions import settle_deletions
from dynamic_assets.datasets.pipeline import outstanding
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.defs.datasets.assets import (
    VERSION_TAG,
    curate_job_name,
    curating_keys,
    ingest_job_name,
    ingest_tags,
    raw_key,
    staging_keys,
)
from dynamic_assets.defs.datasets.partitions import ensure_partition, partitions_name
from dynamic_assets.defs.headless import plan_forward
from dynamic_assets.defs.provenance.keys import attestation_key
from dynamic_assets.defs.provenance.resources import AttestationResource
from dynamic_assets.defs.resources import DriveResource, PostgresResource
from dynamic_assets.drive.changes import DELTA_BUDGET_SECONDS, plan_changes
from dynamic_assets.drive.discovery import DATASETS_FOLDER, Discovery, discover
from dynamic_assets.drive.sync_events import recording

CURSOR_VERSION = 1
PARTITION_TAG = "dagster/partition"  # the tag Dagster gives a run of one partition


def encode_cursor(state: dict) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode()


def decode_cursor(cursor: str | None) -> dict:
    if not cursor:
        return {"v": CURSOR_VERSION, "versions": {}, "problems": []}
    try:
        state = json.loads(zlib.decompress(base64.urlsafe_b64decode(cursor.encode())))
    except (ValueError, zlib.error):
        return {"v": CURSOR_VERSION, "versions": {}, "problems": []}
    if state.get("v") != CURSOR_VERSION:
        return {"v": CURSOR_VERSION, "versions": {}, "problems": []}
    return state


def _problem_token(path: str, etag: str) -> str:
    return hashlib.sha1(f"{path}\x00{etag}".encode("utf-8", "surrogateescape")).hexdigest()[:12]


def plan_tick(
    found: Discovery, cursor: dict, existing: dict[str, set[str]]
) -> tuple[list[dg.RunRequest], list, dict, list]:
    """Run requests, partition additions, the next cursor and the new problems for one tick."""
    seen = cursor.get("versions", {})
    next_versions: dict[str, str] = {}
    requests: list[dg.RunRequest] = []
    additions: dict[str, list[str]] = {}
    for key, vf in sorted(found.versions.items()):
        # An empty version folder gets a run too: it fails naming the folder, visibly in the UI.
        digest = vf.digest
        next_versions[key] = digest
        if seen.get(key) == digest:
            continue
        if vf.version not in existing.get(vf.dataset, set()):
            additions.setdefault(vf.dataset, []).append(vf.version)
        requests.append(
            dg.RunRequest(
                job_name=ingest_job_name(vf.dataset),
                partition_key=vf.version,
                run_key=f"{vf.dataset}|{vf.version}|{digest}",
                tags=ingest_tags(vf.dataset, vf.version, "drive_sensor"),
                asset_selection=staging_keys(vf.dataset),
            )
        )
    old_problems = set(cursor.get("problems", []))
    new_problems = []
    tokens = []
    for p in found.problems:
        token = _problem_token(p.path, p.item.etag if p.item else "-")
        tokens.append(token)
        if token not in old_problems:
            new_problems.append(p)
    partition_requests = [
        dg.AddDynamicPartitionsRequest(partitions_def_name=partitions_name(ds), partition_keys=keys)
        for ds, keys in sorted(additions.items())
    ]
    next_cursor = {"v": CURSOR_VERSION, "versions": next_versions, "problems": sorted(tokens)}
    return requests, partition_requests, next_cursor, new_problems


def forward_requests(
    db,
    decls: Declarations,
    anchoring: bool,
    trigger: str,
    *,
    dataset: str | None = None,
    taken: set[tuple[str, str]] | frozenset = frozenset(),
    attempt: str = "",
) -> list[dg.RunRequest]:
    """A run for each curated version not in its final state (`headless.plan_forward`), but
    those in `taken` (requested already): its ingest job when it has no fingerprint (staged
    again; the curate sensor curates and fingerprints it when that run succeeds), else its
    attestation asset only, in its curate job. The run key names the state, when it was
    entered and `attempt`."""
    requests = []
    for left in plan_forward(db, decls, anchoring, dataset=dataset, skip=taken):
        since = left.since.isoformat() if left.since else "-"
        again = left.state == "unfingerprinted"
        requests.append(
            dg.RunRequest(
                job_name=(ingest_job_name if again else curate_job_name)(left.dataset),
                partition_key=left.version,
                run_key=f"forward|{left.dataset}|{left.version}|{left.state}|{since}{attempt}",
                tags=ingest_tags(left.dataset, left.version, trigger),
                asset_selection=None if again else [attestation_key(left.dataset)],
            )
        )
    return requests


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def in_flight(instance: dg.DagsterInstance) -> set[tuple[str, str]]:
    """(dataset, version) of every run queued or in progress on the instance: such a version is
    on its way forward already (its run attests it), so a tick asks for no second run of it."""
    out: set[tuple[str, str]] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        tagged = run.tags.get(VERSION_TAG, "")
        dataset, _, version = tagged.partition("/")
        if dataset and version:
            out.add((dataset, version))
    return out


def _with_forward(
    context: dg.SensorEvaluationContext,
    db,
    decls: Declarations,
    anchoring: bool,
    requests: list[dg.RunRequest],
    additions: list,
    existing: dict[str, set[str]],
) -> tuple[list[dg.RunRequest], list]:
    """The tick's requests and partition additions, with the runs of versions left short of
    their final state (and their partitions, when the instance lacks them)."""
    taken = {(r.tags["dataset"], r.partition_key or "") for r in requests}
    taken |= in_flight(context.instance)
    forward = forward_requests(db, decls, anchoring, "drive_sensor", taken=taken)
    missing: dict[str, list[str]] = {}
    for r in forward:
        ds, version = r.tags["dataset"], r.partition_key or ""
        if version not in existing.get(ds, set()):
            missing.setdefault(ds, []).append(version)
    if forward:
        names = [f"{r.tags['dataset']} {r.partition_key}" for r in forward]
        context.log.info(
            f"{len(forward)} version(s) left short of their final state: {', '.join(names[:10])}"
        )
    added = [
        dg.AddDynamicPartitionsRequest(partitions_def_name=partitions_name(ds), partition_keys=keys)
        for ds, keys in sorted(missing.items())
    ]
    return requests + forward, additions + added


def build_drive_sensor(decls: Declarations, jobs: list) -> dg.SensorDefinition:
    @dg.sensor(
        name="drive_sensor",
        jobs=jobs,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Lists the drive's dataset folders and starts a run for each new or changed version.",
    )
    def drive_sensor(
        context: dg.SensorEvaluationContext,
        drive: DriveResource,
        postgres: PostgresResource,
        attestation: AttestationResource,
    ) -> dg.SensorResult:
        source = drive.get()
        if hasattr(source, "delta"):
            return _delta_tick(context, source, postgres, decls, attestation.anchoring)
        found = discover(source, decls)
        with postgres.database().connect() as conn:
            settle_deletions(conn, found)  # recorded here; the changed digest runs the version
        for p in found.deleted:
            if p.path != f"{DATASETS_FOLDER}/{p.dataset}/{p.version}":  # status names the rest
                context.log.warning(f"{p.dataset} {p.version} {p.message}")
        existing = {
            ds.name: set(context.instance.get_dynamic_partitions(partitions_name(ds.name)))
            for ds in decls.datasets
        }
        cursor = decode_cursor(context.cursor)
        requests, additions, next_cursor, new_problems = plan_tick(found, cursor, existing)
        if new_problems:
            with postgres.database().connect() as conn:
                registry.record_problems(conn, new_problems)
            for p in new_problems:
                context.log.warning(f"not taken: {p.message}")
        if requests:
            names = [f"{r.tags['dataset']} {r.partition_key}" for r in requests]
            more = f" and {len(names) - 10} more" if len(names) > 10 else ""
            context.log.info(
                f"{len(requests)} version(s) to bring in: {', '.join(names[:10])}{more}"
            )
        requests, additions = _with_forward(
            context,
            postgres.database(),
            decls,
            attestation.anchoring,
            requests,
            additions,
            existing,
        )
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=additions,
            cursor=encode_cursor(next_cursor),
        )

    return drive_sensor


def encode_delta_cursor(link: str | None, *, full: bool = False) -> str:
    state: dict = {"delta": link}
    if full:
        state["full"] = 1
    return json.dumps(state, separators=(",", ":"))


def decode_delta_cursor(cursor: str | None) -> dict:
    """The delta cursor; anything else (none, or a listing cursor) starts a full enumeration."""
    if cursor and cursor.startswith("{"):
        try:
            state = json.loads(cursor)
        except ValueError:
            state = None
        if isinstance(state, dict) and isinstance(state.get("delta"), str):
            return state
    return {"delta": None}


def _delta_tick(
    context: dg.SensorEvaluationContext,
    source,
    postgres: PostgresResource,
    decls: Declarations,
    anchoring: bool,
) -> dg.SensorResult:
    """One tick over the drive's change feed: list what changed, run the versions it touched."""
    state = decode_delta_cursor(context.cursor)
    db = postgres.database()
    # The process's shared drive records its throttled requests and resyncs from now on.
    recording(source, db)
    changes = source.delta(state["delta"], budget_seconds=DELTA_BUDGET_SECONDS)
    full = changes.full or bool(state.get("full"))
    if changes.resync:
        context.log.warning(
            "the drive's delta link had expired: listed everything again; "
            "only files that changed since they were ingested are run"
        )
    plan = plan_changes(source, decls, changes, db, full_listing=full)
    existing = {
        ds.name: set(context.instance.get_dynamic_partitions(partitions_name(ds.name)))
        for ds in decls.datasets
    }
    found = Discovery(versions=plan.versions)
    requests, additions, _, _ = plan_tick(found, {}, existing)
    if plan.problems or plan.emptied:
        with db.connect() as conn:
            registry.record_problems(conn, plan.problems)
            for vf in plan.emptied:
                registry.record_problem(
                    conn,
                    path=vf.folder,
                    reason="every file of this version was deleted from the drive; "
                    "its curated data is kept",
                    status="deleted",
                    dataset=vf.dataset,
                    version=vf.version,
                )
    for p in plan.problems:
        context.log.warning(f"not taken: {p.message}")
    for path, _, _ in plan.deleted[:20]:
        context.log.info(f"deleted from the drive: {path}")
    for vf in plan.emptied:
        context.log.warning(
            f"{vf.dataset} {vf.version}: every file was deleted from the drive; "
            "the curated version is kept (drop it deliberately if it should go)"
        )
    if requests:
        names = [f"{r.tags['dataset']} {r.partition_key}" for r in requests]
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        context.log.info(f"{len(requests)} version(s) to bring in: {', '.join(names[:10])}{more}")
    context.log.info(
        f"delta: {changes.pages} page(s), {len(changes.items)} changed, {len(changes.deleted)} "
        f"deleted, {plan.listed_folders} folder(s) listed, {len(plan.unchanged)} version(s) "
        "already curated as listed" + ("" if changes.complete else "; continuing next tick")
    )
    requests, additions = _with_forward(
        context, db, decls, anchoring, requests, additions, existing
    )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=additions,
        cursor=encode_delta_cursor(changes.link, full=full and not changes.complete),
    )


def curating_request(run: dg.DagsterRun) -> dg.RunRequest | None:
    """The run that goes on from a succeeded run of a version's ingest job that staged it
    (however it was started: sensor, schedule, `run`, a backfill or a launch from the UI): the
    version's curate job (`curating_keys`), with the run's version and trigger; None for any
    other run."""
    dataset, version = run.tags.get("dataset"), run.tags.get(PARTITION_TAG)
    if not dataset or not version or run.job_name != ingest_job_name(dataset):
        return None
    # A run of the whole job records no selection (an empty one); one of the manifest alone
    # staged nothing to curate.
    if run.asset_selection and raw_key(dataset) not in run.asset_selection:
        return None
    return dg.RunRequest(
        job_name=curate_job_name(dataset),
        partition_key=version,
        run_key=f"curate|{run.run_id}",
        tags=ingest_tags(dataset, version, run.tags.get("trigger", "curate_sensor")),
        asset_selection=curating_keys(dataset),
    )


def build_curate_sensor(ingest_jobs: list, curate_jobs: list) -> dg.SensorDefinition:
    """Requests the curate job of a version (`curating_request`) when a run of its ingest job
    succeeded: a version that fails at staging runs no further, and the UI shows its curated and
    provenance partitions missing, not failed."""

    @dg.run_status_sensor(
        name="curate_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=ingest_jobs,
        request_jobs=curate_jobs,
        minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Curates, fingerprints and attests each version whose staging run succeeded.",
    )
    def curate_sensor(context: dg.RunStatusSensorContext):
        request = curating_request(context.dagster_run)
        return request if request is not None else dg.SkipReason("not a staging run")

    return curate_sensor


def build_reconcile_schedule(ds_name: str, decls: Declarations, job) -> dg.ScheduleDefinition:
    """An hourly safety net for one dataset, on its ingest job (`job`): stages every version
    whose files have not reached curated, and every curated version without fingerprint (tried
    again each hour); the curate sensor takes each on when its run succeeds. Versions that lack
    only their attestation are `build_attest_schedule`'s."""

    @dg.schedule(
        name=f"hourly_reconcile_{ds_name}",
        cron_schedule="0 * * * *",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Compares the drive's {ds_name} folders with what reached curated and runs "
        "what is missing, and brings each curated version to its final state (attested, or "
        "anchored with TON anchoring).",
    )
    def hourly_reconcile(
        context: dg.ScheduleEvaluationContext,
        drive: DriveResource,
        postgres: PostgresResource,
        attestation: AttestationResource,
    ):
        db = postgres.database()
        found = discover(drive.get(), decls, dataset=ds_name)
        pending, _ = outstanding(db, found)
        requests = []
        for vf in pending:
            ensure_partition(context.instance, ds_name, vf.version)
            requests.append(
                dg.RunRequest(
                    partition_key=vf.version,
                    run_key=f"reconcile|{vf.dataset}|{vf.version}|{vf.digest}",
                    tags=ingest_tags(vf.dataset, vf.version, "reconcile"),
                    asset_selection=staging_keys(vf.dataset),
                )
            )
        hour = context.scheduled_execution_time
        forward = forward_requests(
            db,
            decls,
            attestation.anchoring,
            "reconcile",
            dataset=ds_name,
            taken={(vf.dataset, vf.version) for vf in pending} | in_flight(context.instance),
            attempt=f"|{hour.isoformat() if hour else '-'}",
        )
        forward = [r for r in forward if r.job_name == ingest_job_name(ds_name)]
        for r in forward:
            ensure_partition(context.instance, ds_name, r.partition_key or "")
        requests += forward
        if not requests:
            return dg.SkipReason(
                f"every {ds_name} version in the drive has reached curated and its final state"
            )
        return requests

    return hourly_reconcile


def build_attest_schedule(ds_name: str, decls: Declarations, job) -> dg.ScheduleDefinition:
    """An hourly safety net for one dataset, on its curate job (`job`): runs the attestation
    asset of every fingerprinted version not attested (or not anchored, with TON anchoring),
    tried again each hour. A schedule launches its one job, so these are not the reconcile's."""

    @dg.schedule(
        name=f"hourly_attest_{ds_name}",
        cron_schedule="0 * * * *",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Attests (or anchors, with TON anchoring) each fingerprinted {ds_name} "
        "version not yet in its final state.",
    )
    def hourly_attest(
        context: dg.ScheduleEvaluationContext,
        postgres: PostgresResource,
        attestation: AttestationResource,
    ):
        hour = context.scheduled_execution_time
        requests = [
            r
            for r in forward_requests(
                postgres.database(),
                decls,
                attestation.anchoring,
                "reconcile",
                dataset=ds_name,
                taken=in_flight(context.instance),
                attempt=f"|{hour.isoformat() if hour else '-'}",
            )
            if r.job_name == curate_job_name(ds_name)
        ]
        for r in requests:
            ensure_partition(context.instance, ds_name, r.partition_key or "")
        return requests or dg.SkipReason(
            f"every fingerprinted {ds_name} version is in its final state"
        )

    return hourly_attest
