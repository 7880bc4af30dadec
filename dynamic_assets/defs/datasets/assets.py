"""One asset factory: each declared dataset becomes a chain of assets partitioned by version.

onedrive/<dataset>  the version folder's file manifest, recorded in `onedrive_ingest`
ai_raw/<dataset>    staging, streamed in with binary COPY (blocking check: rows castable)
ai_curated/<dataset> typed rows promoted inside Postgres, registered in `datasets`
"""

import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from psycopg import sql

from dynamic_assets.datasets import pipeline, pointers
from dynamic_assets.datasets.checks import Problem
from dynamic_assets.db.casts import WITHHELD, describe_example
from dynamic_assets.db.tables import CURATED_SCHEMA, ident
from dynamic_assets.declarations.model import Dataset, Declarations
from dynamic_assets.defs.datasets.asset_args import DatasetAssetArgs, dataset_asset_args
from dynamic_assets.defs.datasets.metadata import md_table
from dynamic_assets.defs.datasets.partitions import versions_partitions
from dynamic_assets.defs.provenance.keys import provenance_keys
from dynamic_assets.defs.resources import DriveResource, PostgresResource
from dynamic_assets.provenance.fingerprint import (
    FingerprintError,
    fingerprint_table,
    store_fingerprint,
)
from dynamic_assets.quality.expectations import ExpectationOutcome, check_names
from dynamic_assets.quality.states import version_states

PIPELINE_CODE_VERSION = "1"
CASTABLE_CHECK = "rows_castable"
SCHEMA_CHECK = "schema_unchanged"
PREVIEW_ROWS = 5


def manifest_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["onedrive", dataset])


def raw_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["ai_raw", dataset])


def curated_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["ai_curated", dataset])


def ingest_job_name(dataset: str) -> str:
    return f"ingest_{dataset}"


def curate_job_name(dataset: str) -> str:
    return f"curate_{dataset}"


# The run tag naming one dataset version (`market/2024-06-01`): the instance's run queue
# limits it to one run in progress per value (`concurrency.runs.tag_concurrency_limits`).
VERSION_TAG = "dynamic_assets/version"


def ingest_tags(dataset: str, version: str, trigger: str) -> dict[str, str]:
    """The tags of an ingest or curate run: the version it brings in and what started it
    (`drive_sensor`, `reconcile`, `cli`, `curate_sensor`)."""
    return {
        "dataset": dataset,
        "version": version,
        "trigger": trigger,
        VERSION_TAG: f"{dataset}/{version}",
    }


def dataset_pool(dataset: str) -> str:
    """The concurrency pool of the steps that write one dataset's tables (staging, curated,
    fingerprint, attestation). Dagster pools are named statically, so a pool spans the
    dataset's versions; unlimited unless the instance sets a limit for it
    (`dagster instance concurrency set dataset/<name> N`). Runs of one version are kept apart
    by `VERSION_TAG` and by the version lock the steps take (`db.tables.version_lock`)."""
    return f"dataset/{dataset}"


def _failure(
    exc: pipeline.VersionFailed,
    problems: Sequence[Problem] = (),
    outcomes: Sequence[ExpectationOutcome] = (),
    *,
    state: str | None = None,
) -> dg.Failure:
    """The step's failure, with `failures` as JSON: one {path, line, row, column, reason} per
    problem (line or row and column when the refusal locates it), for the UI and the command
    line to show without parsing text; and the version's `state` after it when given."""
    metadata: dict[str, dg.MetadataValue | str] = {
        "dataset": exc.dataset,
        "version": exc.version,
        "failures": dg.MetadataValue.json(located_failures(exc, problems, outcomes)),
    }
    if state is not None:
        metadata["state"] = state
    return dg.Failure(description=str(exc), metadata=metadata)


def _state(db, dataset: str, version: str) -> str:
    """The version's state (`quality.states`), as its partition's metadata shows it."""
    with db.connect() as conn:
        states = version_states(conn, dataset, version)
    return states[0].state if states else "unknown"


def located_failures(
    exc: pipeline.VersionFailed,
    problems: Sequence[Problem] = (),
    outcomes: Sequence[ExpectationOutcome] = (),
) -> list[dict]:
    """Each failure of a version as {path, line, row, column, reason}: from the `LoadError` that
    refused a file (its line or row), the `PromotionError` that refused rows (one entry per
    column), or the blocking checks (`rows_castable` problems and failed ERROR expectations: one
    entry per file at fault, at the row of its first example, with the column and what that file
    holds), then the (path, reason) the pipeline gave for what these do not account for."""
    from dynamic_assets.datasets.errors import PromotionError
    from dynamic_assets.formats.errors import LoadError

    cause = exc.__cause__
    if isinstance(cause, LoadError):
        return [_located(cause.path, cause.explained, line=cause.line, row=cause.row)]
    if isinstance(cause, PromotionError) and cause.problems:
        path = exc.failures[0][0] if exc.failures else f"ai_raw.{exc.dataset}"
        return [
            _located(path, str(p.get("message") or cause), column=p.get("column"))
            for p in cause.problems
        ]
    # (examples, column, the message of a file at fault, the version's message) of each
    # blocking failure; a failed expectation's files beyond its examples are located at their
    # first unexpected row.
    failed: list[tuple[list[dict], str | None, Callable[[str], str], str]] = [
        (p.examples, p.column, partial(_message_in_file, p), p.message) for p in problems
    ]
    failed += [
        (
            o.examples + [{"file": f, "row": r} for f, r in o.first_rows.items()],
            o.expectation.kwargs.get("column"),
            o.message_in_file,
            o.message,
        )
        for o in outcomes
        if not o.success and o.severity == "error"
    ]
    located: list[dict] = []
    explained: list[str] = []
    explained_in: dict[str, list[str]] = {}
    for examples, column, message_in, whole in failed:
        seen: set[str] = set()
        for example in examples:
            file = example.get("file")
            if not file or file in seen or example.get("row") is None:
                continue
            seen.add(file)
            reason = _reason(message_in(file), column, example)
            located.append(_located(file, reason, row=example["row"], column=column))
            explained_in.setdefault(file, []).append(message_in(file))
        if seen:
            explained.append(whole)
    # The pipeline's reasons quote each file's messages, or the version's: what is left is not
    # located above.
    for path, reason in exc.failures:
        rest = reason
        for message in [*explained_in.get(path, []), *explained]:
            rest = rest.replace(message, "")
        rest = rest.strip("; ")
        if rest:
            located.append(_located(path, rest))
    return located


def _message_in_file(problem: Problem, path: str) -> str:
    return problem.by_file.get(path, problem.message)


def _reason(message: str, column: str | None, example: dict) -> str:
    """A file's failure message for its first example: without the column it names first and
    without that example (the entry carries both), led by the value when it is shown."""
    reason = message.removeprefix(f"column {column}: ")
    first = describe_example(example)
    reason = reason.replace(f" (first: {first})", "").replace(f"; first: {first}", "")
    value = example.get("value")
    if value is not None and value != WITHHELD:
        reason = f"value {value!r}: {reason}"
    return reason


def _located(
    path: str,
    reason: str,
    *,
    line: int | None = None,
    row: int | None = None,
    column: str | None = None,
) -> dict:
    return {"path": path, "line": line, "row": row, "column": column, "reason": reason}


def build_dataset_assets(ds: Dataset, decls: Declarations) -> list:
    """The assets and checks of one declared dataset."""
    schema_md = md_table(
        ["column", "type", "nullable"], [(c.name, c.type, c.nullable) for c in ds.columns]
    )
    common = dataset_asset_args(ds)

    @dg.asset(
        key=manifest_key(ds.name),
        kinds={"onedrive", "files"},
        code_version=PIPELINE_CODE_VERSION,
        description=f"{ds.name} files: one version folder of the drive "
        f"(`datasets/{ds.name}/<version>/`), its files recorded in `onedrive_ingest`.\n\n"
        + _chain(ds),
        **_labelled(common, "files"),
    )
    def manifest(
        context: dg.AssetExecutionContext, postgres: PostgresResource, drive: DriveResource
    ) -> dg.MaterializeResult:
        version = context.partition_key
        try:
            m = pipeline.record_manifest(
                postgres.database(), drive.get(), decls, ds, version, run_id=context.run.run_id
            )
        except pipeline.VersionFailed as exc:
            raise _failure(exc) from None
        files = m.rows
        return dg.MaterializeResult(
            metadata={
                "files": len(files),
                "bytes": sum(f["bytes"] for f in files),
                "folder": m.folder.folder,
                "manifest": dg.MetadataValue.md(
                    md_table(
                        ["path", "format", "bytes", "modified"],
                        [(f["path"], f["format"], f["bytes"], f["modified"]) for f in files],
                    )
                ),
            },
            data_version=dg.DataVersion(m.folder.digest),
        )

    @dg.asset(
        key=raw_key(ds.name),
        deps=[manifest_key(ds.name)],
        pool=dataset_pool(ds.name),
        kinds={"postgres", "staging"},
        code_version=PIPELINE_CODE_VERSION,
        description=f"{ds.name} staging: table `ai_raw.{ds.name}`, the version's files streamed in "
        f"with binary COPY ({ds.family} staging), one partition per version, with the source file "
        "and row of every row. Its checks gate promotion to curated.",
        check_specs=_staging_check_specs(ds),
        **_labelled(common, "staging"),
    )
    def staging(
        context: dg.AssetExecutionContext, postgres: PostgresResource, drive: DriveResource
    ):
        version = context.partition_key
        db = postgres.database()
        try:
            staged = pipeline.stage(db, drive.get(), decls, ds, version, run_id=context.run.run_id)
        except pipeline.VersionFailed as exc:
            raise _failure(exc, state=_state(db, ds.name, version)) from None
        checked = pipeline.validate(db, ds, version, staged, run_id=context.run.run_id)
        if checked.quarantined:
            context.log.error(
                "quarantined: "
                + "; ".join(f"{path}: {reason}" for path, reason in checked.quarantined.items())
            )
        if checked.blocking_failures:
            # The evaluations are recorded; the partition fails instead of showing a
            # materialization whose blocking checks failed.
            yield from _check_results(ds, checked)
            # One line per file at fault (its reasons), then each failure traced to no file.
            failures = list(checked.quarantined.items())
            failures += [(f"ai_raw.{ds.name}", message) for message in checked.untraced_failures]
            raise _failure(
                pipeline.VersionFailed(ds.name, version, failures),
                checked.problems,
                checked.expectations,
                state=_state(db, ds.name, version),
            )
        seconds = staged.seconds
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": staged.rows,
                "files": len(staged.loads),
                "bytes": staged.bytes,
                "seconds": round(seconds, 3),
                "rows_per_second": round(staged.rows / seconds) if seconds > 0 else None,
                "loads": dg.MetadataValue.md(
                    md_table(
                        ["file", "rows", "bytes", "sha256", "seconds"],
                        [
                            (f.path, f.rows, f.bytes, f.sha256[:16] + "…", round(f.seconds, 3))
                            for f in staged.loads
                        ],
                    )
                ),
            },
            check_results=_check_results(ds, checked),
        )

    @dg.asset(
        key=curated_key(ds.name),
        deps=[raw_key(ds.name)],
        pool=dataset_pool(ds.name),
        # The step is a kind: the asset graph names all three nodes by the key's last part
        # (the dataset) and shows the kinds beneath it by default.
        kinds={"postgres", "curated"} | ({"pgvector"} if ds.embeddings else set()),
        code_version=PIPELINE_CODE_VERSION,
        freshness_policy=(
            dg.FreshnessPolicy.time_window(
                fail_window=timedelta(days=ds.freshness.max_days_between_versions)
            )
            if ds.freshness
            else None
        ),
        description=f"{ds.name} curated: "
        + (ds.description or f"the curated dataset {ds.name}.")
        + f"\n\nTyped table `ai_curated.{ds.name}` (sensitivity: {ds.sensitivity}), one partition per version, "
        f"replaced atomically; registered in `datasets`. Promoted only when the blocking checks "
        f"of `ai_raw/{ds.name}` pass ({', '.join(_gating_checks(ds))}).\n\n" + schema_md,
        **_labelled(common, "curated"),
    )
    def curated(
        context: dg.AssetExecutionContext, postgres: PostgresResource, drive: DriveResource
    ) -> dg.MaterializeResult:
        version = context.partition_key
        db = postgres.database()
        try:
            result = pipeline.curate(
                db,
                drive.get().kind,
                ds,
                version,
                run_id=context.run.run_id,
                fingerprint=lambda conn, table, files: fingerprint_table(
                    conn, ds, version, table, files
                ),
                store=store_fingerprint,
            )
        except pipeline.VersionFailed as exc:
            raise _failure(exc) from None
        except FingerprintError as exc:
            raise dg.Failure(
                description=f"{ds.name} {version}: {exc}",
                metadata={"dataset": ds.name, "version": version},
            ) from None
        checksum = _checksum(result.files)
        meta = {
            "dagster/row_count": result.rows,
            "files": len(result.files),
            "bytes": sum(int(f["size_bytes"] or 0) for f in result.files),
            "seconds": round(result.seconds, 3),
            "checksum": checksum,
            "table": f"ai_curated.{ds.name}",
            "version": version,
            "tier": "core",  # the lifecycle reports later moves on the partition
        }
        meta["gating_checks"] = dg.MetadataValue.md(_gating_results(context.instance, ds, version))
        with db.connect() as conn:
            meta["current_version"] = pointers.current_version(conn, ds.name) or "-"
        meta["state"] = _state(db, ds.name, version)
        if ds.sensitivity == "sensitive":
            meta["preview"] = dg.MetadataValue.md(
                "_No value preview: the dataset is declared sensitive._\n\n" + schema_md
            )
        else:
            meta["preview"] = dg.MetadataValue.md(_preview(db, ds, version))
        return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(checksum))

    return [manifest, staging, curated]


STEP_TAG = "dynamic_assets/step"


def _labelled(common: DatasetAssetArgs, step: str) -> DatasetAssetArgs:
    """The dataset's asset arguments with the tag naming the asset's step in the chain."""
    return DatasetAssetArgs(**{**common, "tags": {**common["tags"], STEP_TAG: step}})


def _chain(ds: Dataset) -> str:
    """What the dataset's chain of assets does, from the drive to an attested table."""
    return (
        f"The `{ds.name}` chain: files (`onedrive/{ds.name}`) -> staging (`ai_raw/{ds.name}`, "
        f"checked) -> curated (`ai_curated/{ds.name}`) -> fingerprint and attestation "
        f"(`provenance/{ds.name}/...`), one partition per version folder."
    )


def _gating_checks(ds: Dataset) -> list[str]:
    """The names of the checks that block promotion to curated."""
    return [CASTABLE_CHECK] + [
        name
        for name, exp in zip(check_names(ds), ds.expectations, strict=True)
        if exp.severity == "error"
    ]


def _gating_results(instance: dg.DagsterInstance, ds: Dataset, version: str) -> str:
    """The checks that gate promotion, each linked to its page in the UI, with the result of
    its latest evaluation of `version` (the partition filter is the type Dagster's event log
    storage takes; it has no public name in Dagster 1.13)."""
    keys = {name: dg.AssetCheckKey(raw_key(ds.name), name) for name in _gating_checks(ds)}
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(keys.values()), partition_filter=PartitionKeyFilter(key=version)
    )
    page = f"/assets/{raw_key(ds.name).to_user_string()}?view=checks&checkDetail="
    rows = []
    for name, key in keys.items():
        record = latest.get(key)
        evaluation = record.event.asset_check_evaluation if record and record.event else None
        result = (
            "not evaluated" if evaluation is None else "passed" if evaluation.passed else "failed"
        )
        rows.append(f"| [{name}]({page}{name}) | {result} |")  # whole: md_table shortens cells
    return "\n".join(["| check | result |", "|---|---|", *rows])


def _partitioned_check(name: str, *, partitions, **kwargs) -> dg.AssetCheckSpec:
    """A check spec partitioned like its asset. Dagster 1.13 marks `partitions_def` on a check
    as a preview and warns at each definition load; the warning is for Dagster's developers,
    not for the people running this code location, so it is not shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, partitions_def=partitions, **kwargs)


def _staging_check_specs(ds: Dataset) -> list[dg.AssetCheckSpec]:
    """The staging asset's checks, partitioned like it: each evaluation names its version."""
    key = raw_key(ds.name)
    partitions = versions_partitions(ds.name)
    specs = [
        _partitioned_check(
            CASTABLE_CHECK,
            asset=key,
            partitions=partitions,
            blocking=True,
            description="Every staged value casts to its declared type (NaN/inf only where allowed), "
            "non-nullable columns have values, and the primary key is unique. Blocks promotion to curated.",
        )
    ]
    for name, exp in zip(check_names(ds), ds.expectations, strict=True):
        args = ", ".join(f"{k}={v!r}" for k, v in exp.kwargs.items())
        specs.append(
            _partitioned_check(
                name,
                asset=key,
                partitions=partitions,
                blocking=True,
                description=f"Great Expectations `{exp.type}({args})`, severity {exp.severity.upper()}"
                + (
                    " (blocks promotion when it fails)"
                    if exp.severity == "error"
                    else " (reported, does not block)"
                ),
            )
        )
    specs.append(
        _partitioned_check(
            SCHEMA_CHECK,
            asset=key,
            partitions=partitions,
            description="Columns added, dropped or retyped in the source files compared with the previous version (warning).",
        )
    )
    return specs


def _examples_md(examples: list[dict]) -> str:
    if not examples:
        return ""
    cols = list(examples[0].keys())
    return md_table(cols, [[e.get(c) for c in cols] for e in examples])


def _check_results(ds: Dataset, checked) -> list[dg.AssetCheckResult]:
    problems = checked.problems
    castable_meta: dict = {
        "problems": len(problems),
        "rows_rejected": sum(p.count for p in problems),
    }
    for p in problems[:10]:
        castable_meta[f"{p.kind}: {p.column}"] = dg.MetadataValue.md(
            p.message + "\n\n" + _examples_md(p.examples)
        )
    if checked.quarantined:
        castable_meta["quarantined_files"] = dg.MetadataValue.md(
            md_table(["file", "reason"], list(checked.quarantined.items()))
        )
    results = [
        dg.AssetCheckResult(
            check_name=CASTABLE_CHECK,
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(p.message for p in problems)[:2000]
            if problems
            else "all rows fit the declaration",
            metadata=castable_meta,
        )
    ]
    for o in checked.expectations:
        meta = {
            "expectation": o.expectation.type,
            "arguments": dg.MetadataValue.json(o.expectation.kwargs),
            "severity": o.severity,
        }
        if o.observed is not None:
            meta["observed_value"] = dg.MetadataValue.text(str(o.observed)[:500])
        if o.unexpected_count is not None:
            meta["unexpected_count"] = int(o.unexpected_count)
            meta["unexpected_percent"] = float(round(o.unexpected_percent or 0.0, 4))
        if o.examples:
            meta["examples"] = dg.MetadataValue.md(_examples_md(o.examples))
        if o.error:
            meta["error"] = o.error
        results.append(
            dg.AssetCheckResult(
                check_name=o.check_name,
                passed=o.success,
                severity=dg.AssetCheckSeverity.ERROR
                if o.severity == "error"
                else dg.AssetCheckSeverity.WARN,
                description=o.message[:2000],
                metadata=meta,
            )
        )
    change = checked.schema_change
    results.append(
        dg.AssetCheckResult(
            check_name=SCHEMA_CHECK,
            passed=not change.changed,
            severity=dg.AssetCheckSeverity.WARN,
            description=change.message,
            metadata={
                "previous_version": change.previous_version or "",
                "added": ", ".join(change.added),
                "dropped": ", ".join(change.dropped),
                "retyped": ", ".join(f"{c}: {a} -> {b}" for c, (a, b) in change.retyped.items()),
            },
        )
    )
    return results


def _checksum(files: list[dict]) -> str:
    from dynamic_assets.datasets.registry import combined_checksum

    return combined_checksum(files)


def _preview(db, ds: Dataset, version: str) -> str:
    names = [c.name for c in ds.columns]
    with db.connect() as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT {} FROM {} WHERE dataset_version = %s ORDER BY _source_file_id, _source_row LIMIT {}"
            ).format(
                sql.SQL(", ").join(sql.Identifier(n) for n in names),
                ident(CURATED_SCHEMA, ds.name),
                sql.Literal(PREVIEW_ROWS),
            ),
            (version,),
        ).fetchall()
    return md_table(names, rows)


def staging_keys(dataset: str) -> list[dg.AssetKey]:
    """The assets of the ingest job (`ingest_<dataset>`): the manifest and the staging asset,
    with its checks, whose blocking ones decide whether the version goes on."""
    return [manifest_key(dataset), raw_key(dataset)]


def curating_keys(dataset: str) -> list[dg.AssetKey]:
    """The assets of the curate job (`curate_<dataset>`), run once the version's staging
    succeeded: curated, fingerprint and attestation. Kept out of the ingest job, a version that
    fails at staging leaves them missing in the UI, not failed, however the ingest job was
    started (sensor, schedule, backfill, launchpad): Dagster fails every asset partition a
    failed run planned and did not materialize."""
    return [curated_key(dataset), *provenance_keys(dataset)]


def build_ingest_job(ds: Dataset):
    """`ingest_<dataset>`: one version's manifest and staging (`staging_keys`); the curate
    sensor runs `curate_<dataset>` for each of its runs that succeeded."""
    return _version_job(
        ds,
        ingest_job_name(ds.name),
        staging_keys(ds.name),
        f"Bring one version of {ds.name} from the drive to staging and check it; when the run "
        f"succeeds, curate_sensor runs {curate_job_name(ds.name)} for the version.",
    )


def build_curate_job(ds: Dataset):
    """`curate_<dataset>`: one staged version's curated, fingerprint and attestation
    (`curating_keys`)."""
    return _version_job(
        ds,
        curate_job_name(ds.name),
        curating_keys(ds.name),
        f"Promote one staged version of {ds.name} to curated, fingerprint and attest it "
        f"(run by curate_sensor after {ingest_job_name(ds.name)} succeeds).",
    )


def _version_job(ds: Dataset, name: str, keys: list[dg.AssetKey], description: str):
    partitions = versions_partitions(ds.name)
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*keys),
        partitions_def=partitions,
        # Every run of one version carries its version tags, a backfill's or a launchpad's too,
        # so the run queue keeps it to one run in progress per version.
        config=dg.PartitionedConfig(
            partitions_def=partitions,
            run_config_for_partition_key_fn=lambda _: {},
            tags_for_partition_key_fn=lambda version: {
                "version": version,
                VERSION_TAG: f"{ds.name}/{version}",
            },
        ),
        description=description,
        tags={"dataset": ds.name},
        # The steps of one version run one after the other (each needs the one before), so a
        # process per step would only add its start-up (imports of Dagster, Great Expectations,
        # MLflow) to every step; runs of several versions go side by side through the run queue.
        executor_def=dg.in_process_executor,
    )
