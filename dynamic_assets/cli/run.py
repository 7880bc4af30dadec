"""`dynamic-assets run`: the pipeline in this process (see `dynamic_assets.defs.headless`), with
a progress bar, a summary table per half (ingest, training) and every problem on stderr."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import click
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dynamic_assets.cli.console import console, err
from dynamic_assets.cli.errors import declared_dataset
from dynamic_assets.cli.lifecycle import run_lifecycle
from dynamic_assets.cli.mirrors import run_mirrors
from dynamic_assets.settings import Settings


class _Unplugged(io.TextIOBase):
    """Text written to the log file, through a stream with no file descriptor.

    Dagster captures a step's output by pointing the descriptor of `sys.stderr` at its own file
    and copying that file back with `tail -F`, which is stopped when the step ends: lines written
    last (the step's failure) were lost when `tail` was slow. Without a descriptor Dagster leaves
    the stream alone, and every line reaches the log as it is written."""

    def __init__(self, file: io.TextIOBase):
        self._file = file

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("the log file is written through Python only")


@contextlib.contextmanager
def _dagster_log(path: Path) -> Iterator[None]:
    """Dagster's log (its console logger writes to `sys.stderr`) appended to `path`."""
    with path.open("a", encoding="utf-8") as log, contextlib.redirect_stderr(_Unplugged(log)):
        yield


@click.command()
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
    if version and not dataset:
        raise click.UsageError("--version needs --dataset")
    from dynamic_assets.declarations.model import load_declarations
    from dynamic_assets.defs import headless
    from dynamic_assets.lifecycle.usage import record_snapshot

    settings = Settings.from_env()
    decls = load_declarations(settings.config_path)
    if dataset:
        declared_dataset(decls, dataset)
    drive = headless.settings_drive(settings)
    db = headless.settings_database(settings)
    shell = _Shell(settings, decls)

    with console.status(f"Listing {drive.describe()} …"):
        plan = headless.plan_ingest(
            db, drive, decls, dataset=dataset, version=version, run_all=run_all
        )
    declared = decls.by_name()
    if any(vf.dataset in declared and declared[vf.dataset].expectations for vf in plan.versions):
        from dynamic_assets.quality import judge

        judge.prepare()  # Great Expectations loads on the other core while Dagster does here
    _print_deleted(plan.deleted)
    for note in plan.notes:
        console.print(note.message, markup=False, highlight=False, soft_wrap=True)
    log_path = headless.run_log_path(settings)
    outcomes = []
    with (
        _dagster_log(log_path),
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not plan.versions,
        ) as progress,
    ):
        task = progress.add_task("Bringing versions to curated", total=len(plan.versions))
        for vf in plan.versions:
            progress.update(task, description=f"{vf.dataset} {vf.version}")
            outcome = headless.ingest_version(
                shell.defs, shell.instance, vf, db, decls, recheck=not run_all
            )
            if outcome.note:
                progress.console.print(outcome.note, markup=False, highlight=False, soft_wrap=True)
            outcomes.append(outcome)
            progress.advance(task)
    ran = {(o.dataset, o.version) for o in outcomes}
    anchoring = settings.provenance.anchoring
    forward = headless.plan_forward(
        db, decls, anchoring, dataset=dataset, version=version, skip=ran
    )
    advanced = []
    with _dagster_log(log_path):
        for left in forward:
            with console.status(
                f"{left.dataset} {left.version}: {left.state}, bringing it forward …"
            ):
                advanced.append(
                    headless.advance_version(
                        shell.defs, shell.instance, db, drive, decls, left, anchoring
                    )
                )
    _print_ingested(outcomes, advanced, plan)

    failures = [
        (o.dataset, o.version, path, reason)
        for o in outcomes + advanced
        for path, reason in o.failures
    ]
    failures += [
        (q["dataset"], q["version"], q["path"], f"still quarantined: {q['error']}")
        for q in plan.quarantined
        if (q["dataset"], q["version"]) not in ran
    ]
    failures += [(p.dataset or "-", p.version or "-", p.path, p.reason) for p in plan.problems]
    failures += run_mirrors(db, decls, dataset, version)  # every declared S3 platform
    failures += run_lifecycle(db, drive, decls)  # when a storage plan is declared
    with db.connect() as conn:
        record_snapshot(conn, "run")  # the size history the weekly review projects
    if train:
        with _dagster_log(log_path):
            failures += _train(shell, db, decls, dataset)
    if log_path.stat().st_size:
        console.print(f"Dagster's log of this run: {log_path}", markup=False, highlight=False)
    else:
        log_path.unlink()
    if failures:
        err.print(f"[red]{len(failures)} problem(s):[/]")
        for ds, ver, path, reason in failures:
            err.print(
                f"  {ds} {ver}  {path}: {reason}", markup=False, highlight=False, soft_wrap=True
            )
        sys.exit(1)


class _Shell:
    """The Dagster definitions and instance a run executes on, built when first used: planning
    is plain code, so that a run with nothing to do never imports Dagster."""

    def __init__(self, settings: Settings, decls) -> None:
        self.settings, self.decls = settings, decls

    @cached_property
    def defs(self):
        from dynamic_assets.definitions import build_defs

        return build_defs(self.settings, self.decls)

    @cached_property
    def instance(self):
        from dynamic_assets.defs import headless

        return headless.dagster_instance(self.settings)


def _print_deleted(deleted: list) -> None:
    """Each file found deleted from the drive, and each curated version left without files."""
    if not deleted:
        return
    console.print(f"[yellow]{len(deleted)} deletion(s) in the drive:[/]")
    for p in deleted:
        where = f"{p.dataset} {p.version}"
        whole = p.path == f"datasets/{p.dataset}/{p.version}"  # the version, not one file
        line = f"  {where}: {p.reason}" if whole else f"  {where}  {p.path}: {p.reason}"
        console.print(line, markup=False, highlight=False, soft_wrap=True)


# What `run` says of the versions an earlier run left short of their final state, by that state.
LEFT = {
    "unfingerprinted": ("fingerprinted and {final}", "left without a fingerprint"),
    "curated": ("{final}", "left unattested"),
    "attested": ("anchored", "left unanchored"),
}


def _print_ingested(outcomes: list, advanced: list, plan) -> None:
    if not outcomes and not advanced:
        if plan.quarantined or plan.problems:
            console.print("Nothing new to run; files the pipeline did not take are listed below.")
        else:
            console.print("Nothing new: every version in the drive has reached curated.")
        return
    for o in advanced:
        if o.note:
            console.print(o.note, markup=False, highlight=False, soft_wrap=True)
    final = "attested and anchored" if any(o.status == "anchored" for o in advanced) else "attested"
    for state, (done, was) in LEFT.items():
        count = sum(1 for o in advanced if o.left == state and o.status in ("attested", "anchored"))
        if count:
            noun = "version" if count == 1 else "versions"
            console.print(f"{done.format(final=final)} {count} {noun} {was}")
    if not outcomes:
        return
    table = Table(title="dynamic-assets run")
    for name in ("dataset", "version", "files", "rows", "seconds", "status"):
        table.add_column(name, justify="right" if name in ("files", "rows", "seconds") else "left")
    for o in outcomes:
        style = {"curated": "green", "another run": "yellow"}.get(o.status, "red")
        table.add_row(
            o.dataset,
            o.version,
            str(o.files),
            f"{o.rows:,}",
            f"{o.seconds:.2f}",
            f"[{style}]{o.status}[/]",
        )
    console.print(table)


def _train(shell: _Shell, db, decls, dataset: str | None) -> list[tuple[str, str, str, str]]:
    """Train what is pending (`records.pending_training`), print a table, return the failures as
    (dataset, version, path, reason) rows for the run's summary."""
    from dynamic_assets.defs import headless
    from dynamic_assets.training.records import pending_training

    with db.connect() as conn:
        pending = pending_training(conn, decls, dataset)
    if not pending:
        return []
    with console.status("Training models on new or changed data …"):
        outcomes = headless.train(shell.defs, shell.instance, db, decls, pending)
    table = Table(title="training")
    for name in ("model", "version", "metric", "value", "seconds", "status", "detail"):
        table.add_column(name, justify="right" if name in ("value", "seconds") else "left")
    for o in outcomes:
        style = {"trained": "green", "failed": "red"}.get(o.status, "yellow")
        table.add_row(
            o.model,
            o.version,
            o.metric,
            "-" if o.value is None else f"{o.value:.4g}",
            f"{o.seconds:.2f}",
            f"[{style}]{o.status}[/]",
            o.detail if o.status != "failed" else "",
        )
    console.print(table)
    models = {m.name: m.dataset for m in decls.models}
    return [
        (models[o.model], o.version, f"models/{o.model}", o.detail)
        for o in outcomes
        if o.status == "failed"
    ] + [  # the model is trained; a platform that could not take its checkpoint is a problem
        (models[o.model], o.version, f"models/{o.model}", failure)
        for o in outcomes
        for failure in o.mirror_failures
    ]
