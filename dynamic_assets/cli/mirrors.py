"""The mirrors in the command line: what `run` mirrors after ingesting, and
`verify DATASET VERSION --mirror NAME`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from dynamic_assets.cli.console import console, err
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations


def run_mirrors(
    db: Database, decls: Declarations, dataset: str | None = None, version: str | None = None
) -> list[tuple[str, str, str, str]]:
    """Mirror every fingerprinted version whose mirror does not hold its fingerprint yet to every
    declared S3 platform, then track it on every DVC platform (`run_dvc`); print a table; return
    the failures as (dataset, version, path, reason) rows for the run's summary. One platform's
    failure does not stop the others."""
    from dynamic_assets.mirrors.publish import mirror_version, pending_mirrors
    from dynamic_assets.mirrors.s3 import MirrorError

    with db.connect() as conn:
        pending = pending_mirrors(conn, decls, dataset, version)
    if not pending:
        return run_dvc(db, decls, dataset, version)
    signer = _signer()
    table = Table(title="mirrors")
    for name in ("dataset", "version", "platform", "bytes", "status"):
        table.add_column(name, justify="right" if name == "bytes" else "left")
    failures = []
    with console.status("Mirroring curated versions …"):
        for ds, ver, platform in pending:
            try:
                done = mirror_version(db, decls, ds, ver, platform, signer=signer)
            except MirrorError as exc:
                failures.append((ds, ver, f"mirrors/{platform}", str(exc)))
                table.add_row(ds, ver, platform, "-", "[red]failed[/]")
                continue
            status = "uploaded" if done.placed.uploaded else "already there"
            table.add_row(ds, ver, platform, f"{done.placed.size_bytes:,}", f"[green]{status}[/]")
    console.print(table)
    return failures + run_dvc(db, decls, dataset, version)


def _signer():
    """The pipeline's signing key, which signs the ledger entry of each object placed."""
    from dynamic_assets.defs.provenance.resources import build_attestation_resource
    from dynamic_assets.settings import Settings

    return build_attestation_resource(Settings.from_env()).signer()


def run_dvc(
    db: Database,
    decls: Declarations,
    dataset: str | None = None,
    version: str | None = None,
    *,
    base: Path | None = None,
) -> list[tuple[str, str, str, str]]:
    """Write the DVC metafile and remote object of every fingerprinted version a declared `kind:
    dvc` platform does not track with its fingerprint yet (`repo_path` relative to `base`, the
    declarations file's folder); print a table; return the failures as `run_mirrors` does."""
    from dynamic_assets.declarations.platforms import DvcPlatform
    from dynamic_assets.mirrors.dvc import track_version
    from dynamic_assets.mirrors.publish import pending_mirrors
    from dynamic_assets.mirrors.s3 import MirrorError

    with db.connect() as conn:
        pending = pending_mirrors(conn, decls, dataset, version, kind=DvcPlatform)
    if not pending:
        return []
    if base is None:
        from dynamic_assets.settings import Settings

        base = Settings.from_env().config_path.parent
    table = Table(title="dvc")
    for name in ("dataset", "version", "platform", "metafile", "status"):
        table.add_column(name)
    failures = []
    for ds, ver, platform in pending:
        try:
            done = track_version(db, decls, ds, ver, platform, base=base)
        except MirrorError as exc:
            failures.append((ds, ver, f"mirrors/{platform}", str(exc)))
            table.add_row(ds, ver, platform, "-", "[red]failed[/]")
            continue
        status = "uploaded" if done.uploaded else "already there"
        table.add_row(ds, ver, platform, str(done.metafile), f"[green]{status}[/]")
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
