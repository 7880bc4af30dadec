"""The mirrors in the command line: what `run` mirrors after ingesting, and
`verify DATASET VERSION --mirror NAME`."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from dynamic_assets.cli.console import console, err
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations


def run_mirrors(
    db: Database, decls: Declarations, dataset: str | None = None, version: str | None = None
) -> list[tuple[str, str, str, str]]:
    """Mirror every fingerprinted version whose mirror does not hold its fingerprint yet to every
    declared S3 platform; print a table; return the failures as (dataset, version, path, reason)
    rows for the run's summary. One platform's failure does not stop the others."""
    from dynamic_assets.mirrors.publish import mirror_version, pending_mirrors
    from dynamic_assets.mirrors.s3 import MirrorError

    with db.connect() as conn:
        pending = pending_mirrors(conn, decls, dataset, version)
    if not pending:
        return []
    table = Table(title="mirrors")
    for name in ("dataset", "version", "platform", "bytes", "status"):
        table.add_column(name, justify="right" if name == "bytes" else "left")
    failures = []
    with console.status("Mirroring curated versions …"):
        for ds, ver, platform in pending:
            try:
                done = mirror_version(db, decls, ds, ver, platform)
            except MirrorError as exc:
                failures.append((ds, ver, f"mirrors/{platform}", str(exc)))
                table.add_row(ds, ver, platform, "-", "[red]failed[/]")
                continue
            status = "uploaded" if done.placed.uploaded else "already there"
            table.add_row(ds, ver, platform, f"{done.placed.size_bytes:,}", f"[green]{status}[/]")
    console.print(table)
    return failures


def verify_mirror_command(db: Database, decls: Declarations, dataset: str, version: str, name: str):
    """Print each step of the mirror check; exit 0 when all pass, else 1 naming the step."""
    from dynamic_assets.mirrors.verify import verify_mirror

    try:
        check = verify_mirror(db, decls, dataset, version, name)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="--mirror") from None
    table = Table(title=f"verify {dataset} {version} --mirror {name}")
    for col in ("step", "result", "detail"):
        table.add_column(col, overflow="fold")
    for step, ok, detail in check.steps:
        table.add_row(step, "[green]PASS[/]" if ok else "[bold red]FAIL[/]", detail)
    console.print(table)
    if check.ok:
        console.print(
            f"[green]VERIFIED[/] {check.url} is {dataset} {version} as fingerprinted",
            highlight=False,
        )
        sys.exit(0)
    step, _, detail = next(s for s in check.steps if not s[1])
    err.print(
        f"FAILED at step {step}: mirror {name}: {dataset} {version}: {detail}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    sys.exit(1)
