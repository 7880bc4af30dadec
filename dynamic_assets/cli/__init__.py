"""`dynamic-assets`: seed a demo drive, run the pipeline headless, declare a dataset from samples."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dynamic_assets.settings import Settings

# Wide enough for the summary tables when the output is a file or a pipe (CI logs, scripts).
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Keep a training data platform in step with a team's OneDrive."""


@main.command()
@click.option("--scale", default=1, show_default=True, help="Multiply the demo row counts.")
@click.option(
    "--drive",
    "drive_root",
    type=click.Path(path_type=Path),
    help="Drive root (default: DYNAMIC_ASSETS_DRIVE).",
)
def seed(scale: int, drive_root: Path | None) -> None:
    """Create a demo drive: several datasets, two versions each, CSV, JSON Lines and Parquet."""
    from dynamic_assets.demo.seed import seed_drive

    settings = Settings.from_env()
    root = drive_root or settings.drive_root
    files = seed_drive(root, scale=scale)
    table = Table(title=f"Demo drive at {root}")
    for name in ("dataset", "version", "file", "rows", "bytes"):
        table.add_column(name, justify="right" if name in ("rows", "bytes") else "left")
    for f in files:
        table.add_row(
            f.dataset, f.version, f.path.rsplit("/", 1)[-1], f"{f.rows:,}", f"{f.bytes:,}"
        )
    console.print(table)
    console.print(f"Declarations: {settings.config_path}")


@dataclass
class Outcome:
    dataset: str
    version: str
    files: int = 0
    rows: int = 0
    seconds: float = 0.0
    status: str = "pending"
    failures: list[tuple[str, str]] = field(default_factory=list)


def _instance():
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    settings = Settings.from_env()
    folder = settings.home / "dagster"
    folder.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(str(folder), overrides={"telemetry": {"enabled": False}})


def _failures_of(result) -> list[tuple[str, str]]:
    found = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            meta = (data.user_failure_data.metadata if data.user_failure_data else {}) or {}
            message = data.error.message if data.error else "step failed"
            desc = (
                data.user_failure_data.description if data.user_failure_data else None
            ) or message
            lines = [ln.strip() for ln in desc.splitlines()[1:] if ln.strip()]
            if lines:
                for ln in lines:
                    path, _, reason = ln.partition(": ")
                    found.append((path, reason or ln))
            else:
                found.append((str(meta.get("dataset", event.step_key)), desc.strip()))
    return found


@main.command()
@click.option("--dataset", help="Only this dataset.")
@click.option("--version", "version", help="Only this version (with --dataset).")
@click.option(
    "--all", "run_all", is_flag=True, help="Run every version, not only what is new or changed."
)
@click.option(
    "--train/--no-train",
    default=True,
    show_default=True,
    help="Then train each declared model on curated versions it has no run for (new or changed data).",
)
def run(dataset: str | None, version: str | None, run_all: bool, train: bool) -> None:
    """Discover what is new in the drive, bring every affected version to curated, and train the
    declared models on new or changed data."""
    from dynamic_assets.datasets.pipeline import outstanding
    from dynamic_assets.declarations.model import load_declarations
    from dynamic_assets.definitions import build_defs
    from dynamic_assets.defs.datasets.assets import ingest_job_name
    from dynamic_assets.defs.datasets.partitions import partitions_name
    from dynamic_assets.drive.discovery import discover

    settings = Settings.from_env()
    decls = load_declarations(settings.config_path)
    defs = build_defs(settings, decls)
    resources = defs.resources
    drive = resources["drive"].get()
    db = resources["postgres"].database()
    if version and not dataset:
        raise click.UsageError("--version needs --dataset")

    with console.status(f"Listing {drive.describe()} …"):
        found = discover(drive, decls, dataset=dataset, version=version)
        pending, quarantined = outstanding(db, found)
    if run_all:
        pending = [v for v in found.versions.values() if v.files or v.rejected]
    pending.sort(key=lambda v: (v.dataset, v.version))
    problems = [p for p in found.problems if p.status in ("undeclared", "quarantined")]
    if problems:
        from dynamic_assets.datasets import registry

        with db.connect() as conn:
            registry.record_problems(conn, problems)

    instance = _instance()
    outcomes: list[Outcome] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not pending,
    ) as progress:
        task = progress.add_task("Bringing versions to curated", total=len(pending))
        for vf in pending:
            progress.update(task, description=f"{vf.dataset} {vf.version}")
            name = partitions_name(vf.dataset)
            if not instance.has_dynamic_partition(name, vf.version):
                instance.add_dynamic_partitions(name, [vf.version])
            outcome = Outcome(vf.dataset, vf.version, files=len(vf.files))
            started = time.perf_counter()
            job = defs.get_job_def(ingest_job_name(vf.dataset))
            result = job.execute_in_process(
                partition_key=vf.version,
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
                tags={"dataset": vf.dataset, "version": vf.version, "trigger": "cli"},
            )
            outcome.seconds = time.perf_counter() - started
            if result.success:
                outcome.status = "curated"
                outcome.rows = _curated_rows(instance, vf.dataset, vf.version)
            else:
                outcome.status = "failed"
                outcome.failures = _failures_of(result) or [(vf.folder, "the run failed")]
            outcomes.append(outcome)
            progress.advance(task)

    table = Table(title="dynamic-assets run")
    for name in ("dataset", "version", "files", "rows", "seconds", "status"):
        table.add_column(name, justify="right" if name in ("files", "rows", "seconds") else "left")
    for o in outcomes:
        style = "green" if o.status == "curated" else "red"
        table.add_row(
            o.dataset,
            o.version,
            str(o.files),
            f"{o.rows:,}",
            f"{o.seconds:.2f}",
            f"[{style}]{o.status}[/]",
        )
    if outcomes:
        console.print(table)
    else:
        console.print("Nothing new: every version in the drive has reached curated.")

    failures: list[tuple[str, str, str, str]] = []
    for o in outcomes:
        for path, reason in o.failures:
            failures.append((o.dataset, o.version, path, reason))
    ran = {(o.dataset, o.version) for o in outcomes}
    for q in quarantined:
        if (q["dataset"], q["version"]) not in ran:
            failures.append(
                (q["dataset"], q["version"], q["path"], f"still quarantined: {q['error']}")
            )
    for p in problems:
        failures.append((p.dataset or "-", p.version or "-", p.path, p.reason))
    if train:
        from dynamic_assets.cli.training import train_after_run

        failures.extend(train_after_run(defs, instance, db, decls, dataset, console))
    if failures:
        err.print(f"[red]{len(failures)} problem(s):[/]")
        for ds, ver, path, reason in failures:
            err.print(
                f"  {ds} {ver}  {path}: {reason}", markup=False, highlight=False, soft_wrap=True
            )
        sys.exit(1)


def _curated_rows(instance, dataset: str, version: str) -> int:
    import dagster as dg

    event = instance.get_latest_materialization_event(dg.AssetKey(["ai_curated", dataset]))
    if event is None or event.asset_materialization is None:
        return 0
    mat = event.asset_materialization
    if mat.partition != version:
        return 0
    value = mat.metadata.get("dagster/row_count")
    return int(value.value) if value is not None else 0


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Health of every dataset: latest version, checks, last runs, quarantined files.

    Exits 1 when a blocking check of any dataset is failing.
    """
    import json

    from dynamic_assets.declarations.model import load_declarations
    from dynamic_assets.quality.status import health
    from dynamic_assets.read.curated import default_database

    settings = Settings.from_env()
    decls = load_declarations(settings.config_path)
    report = health(default_database(settings), decls)
    if as_json:
        click.echo(json.dumps([h.as_dict() for h in report], default=str, indent=2))
    else:
        table = Table(title="dynamic-assets status")
        for name in (
            "dataset",
            "latest",
            "rows",
            "checks",
            "last success",
            "last failure",
            "quarantined",
            "fresh",
        ):
            table.add_column(name)
        for h in report:
            total = len(h.checks)
            failed = [
                n for n, r in h.checks.items() if isinstance(r, dict) and not r.get("passed", True)
            ]
            if not total:
                checks = "-"
            elif h.failing_checks:
                checks = f"[red]{len(h.failing_checks)} blocking failed[/]"
            elif failed:
                checks = f"[yellow]{len(failed)} warning(s)[/]"
            else:
                checks = f"[green]{total} passed[/]"
            fresh = "-" if h.stale is None else ("[red]stale[/]" if h.stale else "[green]yes[/]")
            table.add_row(
                h.dataset,
                h.latest_version or "-",
                f"{h.latest_rows:,}" if h.latest_rows is not None else "-",
                checks,
                _when(h.last_success),
                _when(h.last_failure),
                str(len(h.quarantined)),
                fresh,
            )
        console.print(table)
        for h in report:
            for name in h.failing_checks:
                result = h.checks.get(name, {})
                detail = result.get("message") or "; ".join(result.get("problems", []))
                err.print(
                    f"  {h.dataset} {h.checked_version}  check {name} failing: {detail}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            for q in h.quarantined:
                err.print(
                    f"  {h.dataset} {q['version']}  {q['path']} quarantined: {q['error']}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
    if any(h.blocking_failure for h in report):
        sys.exit(1)


def _when(run: dict | None) -> str:
    return f"{run['version']} {run['finished_at']:%Y-%m-%d %H:%M}" if run else "-"


@main.command()
@click.argument("name")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Sample file or folder.",
)
@click.option("--replace", is_flag=True, help="Replace an existing declaration of NAME.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Declarations file to write (default: DYNAMIC_ASSETS_CONFIG).",
)
def declare(name: str, source: Path, replace: bool, config_path: Path | None) -> None:
    """Infer a dataset declaration from sample files and write it into the configuration."""
    from dynamic_assets.declarations.infer import add_to_declarations, infer_dataset
    from dynamic_assets.declarations.model import (
        ConfigError,
        dump_declarations,
        load_declarations,
        save_declarations,
    )

    settings = Settings.from_env()
    target = config_path or settings.writable_config_path
    try:
        decls = load_declarations(target if target.exists() else settings.config_path)
        dataset = infer_dataset(name, [source])
        decls = add_to_declarations(decls, dataset, replace=replace)
    except (ValueError, ConfigError) as exc:
        err.print(f"[red]cannot declare {name}:[/] {exc}", highlight=False)
        sys.exit(2)
    save_declarations(decls, target)
    from dynamic_assets.declarations.model import Declarations

    console.print(
        dump_declarations(Declarations(datasets=[dataset])), markup=False, highlight=False
    )
    console.print(f"Declared [bold]{name}[/] in {target}")


main.add_command(__import__("dynamic_assets.cli.onedrive", fromlist=["onedrive"]).onedrive)

from dynamic_assets.cli.provenance import attest, lineage, verify  # noqa: E402

main.add_command(verify)
main.add_command(lineage)
main.add_command(attest)
main.add_command(__import__("dynamic_assets.cli.training", fromlist=["x"]).checkpoints)


if __name__ == "__main__":
    main()
