"""`dynamic-assets lifecycle`, `tiers` and `restore`: the storage tiers from the command line."""

from __future__ import annotations

import sys

import click

from dynamic_assets.settings import Settings

MB = 1024 * 1024


def _context():
    from dynamic_assets.declarations.model import load_declarations
    from dynamic_assets.defs.resources import Resources
    from dynamic_assets.read.curated import default_database

    settings = Settings.from_env()
    decls = load_declarations(settings.config_path)
    return settings, decls, default_database(settings), Resources.from_settings(settings)


def _signer(settings):
    from dynamic_assets.defs.provenance.resources import build_attestation_resource

    return build_attestation_resource(settings).signer()


def _record_placements(settings, placements) -> None:
    """Each placement on its version's `ai_curated/<dataset>` partition in the home's Dagster
    instance (the one `dynamic-assets dev` serves)."""
    if not placements:
        return
    from dynamic_assets.defs.headless import dagster_instance
    from dynamic_assets.defs.lifecycle.observations import report_placements

    with dagster_instance(settings) as instance:
        report_placements(instance, placements)


def _mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what the pass would move; move nothing.")
def lifecycle(dry_run: bool) -> None:
    """Run one lifecycle pass: archive the versions the storage plan moves out of core, each
    verified against its fingerprint before its partition is dropped, and encrypt the plaintext
    archives of datasets declared sensitive since; print what moved. Exit 1 when a version could
    not be moved or is left in a state to act on (a plaintext archive of a sensitive dataset and
    no key)."""
    from dynamic_assets.lifecycle.run import run_pass

    settings, decls, db, resources = _context()
    done = run_pass(db, resources.drive.get(), decls, dry_run=dry_run, key=_signer(settings))
    _record_placements(settings, done.placements)
    _print_deletions(done, dry_run)
    if not done.plan.moves:
        click.echo("Nothing to move: every version is where the storage plan wants it.")
    for move in done.plan.moves:
        if dry_run:
            click.echo(
                f"would move {move.dataset} {move.version} {move.source} -> {move.target}"
                f"{_freed(move)}: {move.reason}"
            )
    _print_moved(done)
    for failure in done.failed:
        click.echo(f"not moved: {failure}", err=True)
    for problem in done.problems:
        click.echo(f"problem: {problem}", err=True)
    if done.failed or done.problems:
        sys.exit(1)


def _print_deletions(done, dry_run: bool) -> None:
    found = done.deletions
    if found is None:
        return
    for line in found.planned.held:
        click.echo(line)
    if dry_run:
        for due in found.planned.due:
            click.echo(
                f"would delete {due.dataset} {due.version} from "
                f"{', '.join(due.tiers) or 'no tier'}: {due.policy} ({due.reason})"
            )
        for dataset, version in found.planned.unfinished:
            click.echo(f"would finish deleting {dataset} {version} (recorded deleted)")
        return
    for d in found.deleted:
        entry = f", ledger entry {d.ledger_seq}" if d.ledger_seq is not None else ""
        click.echo(
            f"deleted {d.dataset} {d.version} from {', '.join(d.tiers) or 'no tier'}: "
            f"{d.policy} ({d.reason}){entry}"
        )


def _freed(move) -> str:
    """What a move frees in core (moves out of main free nothing there)."""
    return f" ({_mb(move.bytes)})" if move.source == "core" else ""


def _print_moved(done) -> None:
    from dynamic_assets.lifecycle.main_tier import MovedToCore, MovedToMain

    sources = {(m.dataset, m.version): m.source for m in done.plan.moves}
    reasons = {(m.dataset, m.version): m.reason for m in done.plan.moves}
    for moved in done.moved:
        if isinstance(moved, MovedToCore):
            click.echo(
                f"moved {moved.dataset} {moved.version} main -> core: {moved.rows} rows, "
                f"verified against its fingerprint ({reasons[(moved.dataset, moved.version)]})"
            )
            continue
        if isinstance(moved, MovedToMain):
            click.echo(
                f"moved {moved.dataset} {moved.version} core -> main: {moved.rows} rows, "
                f"{moved.database}, verified against its fingerprint"
            )
            continue
        source = sources.get((moved.dataset, moved.version), "core")
        click.echo(
            f"moved {moved.dataset} {moved.version} {source} -> archive: {moved.rows} rows, "
            f"{moved.path} ({moved.size_bytes / 1024:.0f} kB), verified against its fingerprint"
        )
    for sealed in done.resealed:
        click.echo(
            f"encrypted {sealed.dataset} {sealed.version} (archive tier): {sealed.path} "
            f"(key id {sealed.key_id}), verified against its fingerprint; the plaintext file "
            "was deleted"
        )


def run_lifecycle(db, drive, decls) -> list[tuple[str, str, str, str]]:
    """After a run's ingest: one lifecycle pass when a storage plan is declared; print what it
    moved and return what it could not move as (dataset, version, path, reason) rows for the
    run's summary (each reason names the version and tier)."""
    from dynamic_assets.lifecycle.run import declared, run_pass

    if not declared(decls):
        return []
    settings = Settings.from_env()
    done = run_pass(db, drive, decls, key=_signer(settings))
    _record_placements(settings, done.placements)
    _print_deletions(done, dry_run=False)
    _print_moved(done)
    return [("-", "-", "lifecycle", reason) for reason in [*done.failed, *done.problems]]


def _main_report(db, decls, count: int) -> dict[tuple[str, str], int]:
    """Print the main tier's line (database, size, versions); the size of each version's
    partition on main (empty when main is not declared or cannot be reached)."""
    from dynamic_assets.lifecycle.main_tier import MainTierError, main_database, main_usage

    if decls.storage.main is None:
        click.echo("main     not configured")
        return {}
    try:
        main = main_database(decls.storage.main)
        assert main is not None
        found = main_usage(db, main)
    except MainTierError as exc:
        click.echo(f"main     {count} version(s); {exc}")
        return {}
    click.echo(
        f"main     {found.database}  {_mb(found.database_bytes)}  {count} version(s), "
        f"curated partitions {_mb(sum(found.partitions.values()))}"
    )
    return found.partitions


@click.command()
def tiers() -> None:
    """Print each storage tier's usage, status and versions, and what the next lifecycle pass
    will move and why; exit 1 when core is critical."""
    from dynamic_assets.lifecycle.run import current_plan

    _, decls, db, _ = _context()
    plan = current_plan(db, decls)
    usage = plan.usage
    core = decls.storage.core
    click.echo(
        f"core     {_mb(usage.database_bytes)} of {core.budget_mb:g} MB "
        f"({usage.fraction:.1%})  {usage.status}  "
        f"(monitor at {core.warn_at:.0%}, critical at {core.critical_at:.0%})"
    )
    click.echo(
        f"         {len(usage.in_tier('core'))} version(s) in core, curated partitions "
        f"{_mb(usage.curated_bytes)}"
    )
    sizes = _main_report(db, decls, len(usage.in_tier("main")))
    click.echo(
        f"archive  drive folder {decls.storage.archive.folder}/  "
        f"{len(usage.in_tier('archive'))} version(s)"
    )
    for v in usage.versions:
        click.echo(
            f"  {v.tier:<8} {v.dataset} {v.version}"
            + (f"  {_mb(v.bytes)}" if v.tier == "core" else "")
            + (
                f"  {_mb(sizes[(v.dataset, v.version)])}"
                if v.tier == "main" and (v.dataset, v.version) in sizes
                else ""
            )
        )
    click.echo("next pass:")
    if not plan.moves:
        click.echo("  nothing to move")
    for move in plan.moves:
        click.echo(
            f"  {move.dataset} {move.version} {move.source} -> {move.target}"
            f"{_freed(move)}: {move.reason}"
        )
    for line in plan.kept:
        click.echo(f"  {line}")
    if usage.status == "critical":
        sys.exit(1)


@click.command()
@click.argument("dataset")
@click.argument("version")
@click.option(
    "--to",
    "target",
    type=click.Choice(["core", "main"]),
    default="core",
    show_default=True,
    help="The tier to bring it back to: core (from main or the archive), main (from the archive).",
)
def restore(dataset: str, version: str, target: str) -> None:
    """Bring a version in the main tier or the archive back into core (or an archived one into
    main), verified against its fingerprint."""
    from dynamic_assets.cli.errors import Failure
    from dynamic_assets.lifecycle.archive import ArchiveError, registered, restore_version
    from dynamic_assets.lifecycle.main_tier import (
        main_database,
        restore_archive_to_main,
        restore_from_main,
    )
    from dynamic_assets.lifecycle.placement import placement

    settings, decls, db, resources = _context()
    try:
        with db.connect() as conn:
            source = registered(conn, dataset, version).tier
        if target == "core" and source == "main":
            rows = restore_from_main(db, dataset, version)
        elif target == "core":
            rows = restore_version(db, resources.drive.get(), dataset, version)
        else:
            if decls.storage.main is None:
                raise Failure("restore --to main: no main tier is declared (storage.main)")
            if source != "archive":
                raise ArchiveError(
                    f"{dataset} {version} is in the {source} tier, not in the archive"
                )
            main = main_database(decls.storage.main, f"{dataset} {version}")
            assert main is not None
            rows = restore_archive_to_main(
                db, main, decls.storage.main.url_env, resources.drive.get(), dataset, version
            )
    except ArchiveError as exc:
        raise Failure(f"restore failed: {exc}") from None
    with db.connect() as conn:
        _record_placements(settings, [placement(conn, dataset, version)])
    click.echo(
        f"restored {dataset} {version} {source} -> {target}: {rows} rows, fingerprint verified"
    )
