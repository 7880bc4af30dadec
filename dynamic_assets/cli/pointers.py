"""`dynamic-assets promote DATASET VERSION` and `dynamic-assets rollback DATASET`: which curated
version is current. Each move is written to the pointer history and, as a signed entry, to the
attestation ledger in one transaction; then the `latest` object of each S3 mirror follows."""

from __future__ import annotations

import click

from dynamic_assets.cli.console import console, err
from dynamic_assets.cli.errors import Misconfigured
from dynamic_assets.settings import Settings


def _ledger_recorder(settings: Settings):
    """Append a move to the ledger: one leaf naming the version made current and its fingerprint,
    with the move (action, from, to, who, why) in the leaf, covered by the entry hash and
    signature."""
    from dynamic_assets.defs.provenance.resources import build_attestation_resource
    from dynamic_assets.provenance import ledger, merkle

    key = build_attestation_resource(settings).signer()

    def record(conn, move) -> int:
        leaf = {
            "dataset": move.dataset,
            "version": move.to_version,
            "fingerprint": move.fingerprint,
            "pointer_move": {
                "action": move.action,
                "from": move.from_version,
                "to": move.to_version,
                "actor": move.actor,
                "reason": move.reason,
            },
        }
        root = merkle.root(ledger.leaf_hashes([leaf])).hex()
        return ledger.append(conn, root, [leaf], key).seq

    return record


def _move(dataset: str, version: str | None, reason: str | None) -> None:
    from dynamic_assets.datasets.pointers import PointerError, promote, rollback
    from dynamic_assets.declarations.model import load_declarations
    from dynamic_assets.read.curated import default_database

    settings = Settings.from_env()
    decls = load_declarations(settings.config_path)
    try:
        decls.dataset(dataset)
    except KeyError as exc:
        raise Misconfigured(str(exc.args[0])) from None
    db = default_database(settings)
    record = _ledger_recorder(settings)
    with db.connect() as conn:
        try:
            with conn.transaction():
                if version is None:
                    move = rollback(conn, dataset, reason=reason, record=record)
                else:
                    move = promote(conn, dataset, version, reason=reason, record=record)
        except PointerError as exc:
            raise Misconfigured(str(exc)) from None
    was = move.from_version or "none"
    console.print(
        f"{dataset}: current version {move.to_version} (was {was}), {move.action} by "
        f"{move.actor}, ledger entry {move.ledger_seq}",
        markup=False,
        highlight=False,
    )
    _observe(settings, move)
    _follow(db, decls, dataset)


def _observe(settings: Settings, move) -> None:
    """Show the new current version on the curated asset in the Dagster UI: an observation of
    `ai_curated/<dataset>` with `current_version` (and the move) in the home's instance."""
    import dagster as dg

    from dynamic_assets.defs.datasets.assets import curated_key
    from dynamic_assets.defs.headless import dagster_instance

    dagster_instance(settings).report_runless_asset_event(
        dg.AssetObservation(
            asset_key=curated_key(move.dataset),
            metadata={
                "current_version": move.to_version,
                "previous_version": move.from_version or "-",
                "moved_by": f"{move.action} by {move.actor}",
            },
        )
    )


def _follow(db, decls, dataset: str) -> None:
    """Move the `latest` object of every S3 mirror that holds the current version."""
    from dynamic_assets.declarations.platforms import S3Platform
    from dynamic_assets.mirrors.publish import point_latest
    from dynamic_assets.mirrors.s3 import MirrorError

    for name, platform in decls.platforms.items():
        if not isinstance(platform, S3Platform):
            continue
        try:
            pointed = point_latest(db, decls, dataset, name)
        except MirrorError as exc:
            err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
            continue
        if pointed is None:
            console.print(
                f"  {name}: the current version is not mirrored yet; its mirror moves latest",
                markup=False,
                highlight=False,
            )
        else:
            console.print(
                f"  {name}: latest -> {pointed.url}", markup=False, highlight=False, soft_wrap=True
            )


@click.command()
@click.argument("dataset")
@click.argument("version")
@click.option("--reason", default=None, help="Why: recorded with the move.")
def promote(dataset: str, version: str, reason: str | None) -> None:
    """Make VERSION the current version of DATASET: what `read_curated(DATASET)` reads, what the
    mirrors' `latest` names and what `versions: current` models train on."""
    _move(dataset, version, reason)


@click.command()
@click.argument("dataset")
@click.option("--reason", default=None, help="Why: recorded with the move.")
def rollback(dataset: str, reason: str | None) -> None:
    """Make the version that was current before DATASET's latest promotion current again."""
    _move(dataset, None, reason)
