"""`dynamic-assets status`: the health of every dataset."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from dynamic_assets.cli.console import console, err
from dynamic_assets.settings import Settings

COLUMNS = (
    "dataset",
    "latest",
    "current",
    "rows",
    "checks",
    "last success",
    "last failure",
    "quarantined",
    "not final",
    "fresh",
)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Health of every dataset: latest and current version, checks, last runs, quarantined files, and each
    version not in its final state (attested, or anchored when TON anchoring is configured).

    With S3 or DVC platforms declared, also the state of each version on each platform:
    mirrored, missing, changed (behind our back) or failed (with the reason).

    Exits 1 when a blocking check of any dataset is failing, a version is not final, a
    curated version has lost every source file, or a mirror failed or changed.
    """
    from dynamic_assets.declarations.model import load_declarations
    from dynamic_assets.mirrors.state import mirror_states
    from dynamic_assets.quality.status import health
    from dynamic_assets.read.curated import default_database

    settings = Settings.from_env()
    decls = load_declarations(settings.config_path)
    db = default_database(settings)
    report = health(db, decls, anchoring=settings.provenance.anchoring)
    mirrors = mirror_states(db, decls, base=settings.config_path.parent)
    if as_json:
        rows = [
            h.as_dict() | {"mirrors": [m.as_dict() for m in mirrors if m.dataset == h.dataset]}
            for h in report
        ]
        click.echo(json.dumps(rows, default=str, indent=2))
    else:
        _print(report)
        _print_mirrors(mirrors)
    if not all(h.green for h in report) or any(m.problem for m in mirrors):
        sys.exit(1)


def _print_mirrors(mirrors: list) -> None:
    """One line per version and platform; failed and changed ones on stderr."""
    if not mirrors:
        return
    console.print("mirrors:", highlight=False)
    for m in mirrors:
        line = f"  {m.dataset} {m.version}  {m.platform} {m.state}: {m.detail}"
        if m.problem:
            _problem(line)
        else:
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def _print(report: list) -> None:
    table = Table(title="dynamic-assets status")
    for name in COLUMNS:
        table.add_column(name)
    for h in report:
        fresh = "-" if h.stale is None else ("[red]stale[/]" if h.stale else "[green]yes[/]")
        table.add_row(
            h.dataset,
            h.latest_version or "-",
            h.current_version or "-",
            f"{h.latest_rows:,}" if h.latest_rows is not None else "-",
            _checks(h),
            _when(h.last_success),
            _when(h.last_failure),
            str(len(h.quarantined)),
            f"[red]{len(h.versions)}[/]" if h.versions else "[green]0[/]",
            fresh,
        )
    console.print(table)
    for h in report:
        for v in h.versions:
            since = f" since {v['since']:%Y-%m-%d %H:%M}" if v["since"] else ""
            _problem(
                f"  {h.dataset} {v['version']}  {v['state']}{since}, not {h.final_state}: "
                f"{v['detail']}"
            )
    for h in report:
        for name in h.failing_checks:
            result = h.checks.get(name, {})
            detail = result.get("message") or "; ".join(result.get("problems", []))
            _problem(f"  {h.dataset} {h.checked_version}  check {name} failing: {detail}")
        for q in h.quarantined:
            _problem(f"  {h.dataset} {q['version']}  {q['path']} quarantined: {q['error']}")
        for p in h.passed_over:
            _problem(f"  {h.dataset}  {p['path']} passed over: {p['error']}")
        for version in h.sources_deleted:
            _problem(f"  {h.dataset} {version}  every source file was deleted from the drive")


def _checks(h) -> str:
    total = len(h.checks)
    failed = [n for n, r in h.checks.items() if isinstance(r, dict) and not r.get("passed", True)]
    if not total:
        return "-"
    if h.failing_checks:
        return f"[red]{len(h.failing_checks)} blocking failed[/]"
    if failed:
        return f"[yellow]{len(failed)} warning(s)[/]"
    return f"[green]{total} passed[/]"


def _problem(line: str) -> None:
    err.print(line, markup=False, highlight=False, soft_wrap=True)


def _when(run: dict | None) -> str:
    return f"{run['version']} {run['finished_at']:%Y-%m-%d %H:%M}" if run else "-"
