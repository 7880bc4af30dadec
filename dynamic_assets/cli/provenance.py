"""`dynamic-assets verify`, `lineage` and `attest pubkey`: what an auditor runs.

    dynamic-assets verify DATASET VERSION [--source] [--json] [--pubkey KEY] [--head FILE|drive]
    dynamic-assets verify --proof FILE [--source] [--json] [--pubkey KEY]
    dynamic-assets lineage DATASET VERSION [--json]
    dynamic-assets attest pubkey [--pem]

`verify` prints each step with pass, fail or skip and exits 0 only if no step failed (1 if one
did, 2 on a usage error).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table
from rich.tree import Tree

from dynamic_assets.cli.console import console, err, print_titled
from dynamic_assets.cli.errors import declared_dataset
from dynamic_assets.cli.mirrors import verify_mirror_command
from dynamic_assets.declarations.model import load_declarations
from dynamic_assets.settings import Settings

STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def _pinned_key(pubkey: str | None, settings: Settings) -> tuple[str | None, str]:
    """The key signatures must come from: --pubkey (text or a file), else the local signing key
    when one exists (never created here), else none."""
    from dynamic_assets.provenance.signing import SigningKeyError, public_key_from_text

    if pubkey:
        text = pubkey
        candidate = Path(pubkey).expanduser()
        if len(pubkey) < 4096 and candidate.is_file():
            text = candidate.read_text(encoding="ascii")
        try:
            return public_key_from_text(text), "pinned key"
        except SigningKeyError as exc:
            raise click.BadParameter(str(exc), param_hint="--pubkey") from None
    from dynamic_assets.defs.provenance.resources import build_attestation_resource

    try:
        key = build_attestation_resource(settings).existing_signer()
    except SigningKeyError:
        key = None
    if key is None:
        return None, "pinned key"
    return key.public_key_hex, "local signing key"


def _head(head: str | None, settings: Settings) -> object:
    """The signed ledger head to check against: a file the auditor kept, or with `drive` the
    newest one published in the drive; None without --head."""
    if head is None:
        return None
    if head == "drive":
        from dynamic_assets.defs.resources import Resources
        from dynamic_assets.provenance.attest import HEADS_FOLDER, newest_head_in

        drive = Resources.from_settings(settings).drive.get()
        doc = newest_head_in(drive)
        if doc is None:
            raise click.BadParameter(
                f"no ledger head in {drive.describe()} under {HEADS_FOLDER}/", param_hint="--head"
            )
        return doc
    try:
        return json.loads(Path(head).expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(
            f"{head}: cannot read the head file ({exc})", param_hint="--head"
        ) from None


def _print_report(report) -> None:
    title = f"verify {report.subject}"
    if report.fingerprint:
        title += f"  (fingerprint {report.fingerprint[:16]}…)"
    table = Table(show_lines=False)
    table.add_column("step")
    table.add_column("result")
    table.add_column("what it proves")
    table.add_column("detail", overflow="fold")
    for s in report.steps:
        table.add_row(s.name, f"[{STYLE[s.status]}]{s.status.upper()}[/]", s.title, s.detail)
    print_titled(title, table)
    failed = report.first_failure
    if failed is None:
        console.print(f"[green]VERIFIED[/] {report.subject}: every step passed or was skipped.")
    else:
        err.print(
            f"FAILED at step {failed.name}: {failed.detail}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@click.command()
@click.argument("dataset", required=False)
@click.argument("version", required=False)
@click.option(
    "--proof",
    "proof_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify a proof file alone, without the database.",
)
@click.option("--source", is_flag=True, help="Also re-hash the source files in the drive.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--pubkey",
    envvar="ATTESTATION_PUBLIC_KEY",
    help="The signing key to pin (hex, base64, PEM, or a file holding it); default: the local "
    "signing key if there is one. See `dynamic-assets attest pubkey`.",
)
@click.option(
    "--head",
    "head_source",
    metavar="FILE|drive",
    help="A signed ledger head you kept (reports/attestations/heads/<size>.json), or `drive` "
    "for the newest one in the drive: the ledger must still hold every entry up to its size, "
    "unchanged (catches deleted newest entries, which the chain alone cannot show).",
)
@click.option(
    "--mirror",
    metavar="PLATFORM",
    help="Instead: download the version's object from this declared platform and prove it is "
    "the fingerprinted data (SHA-256, then the content digest of its rows).",
)
def verify(
    dataset: str | None,
    version: str | None,
    proof_file: Path | None,
    source: bool,
    as_json: bool,
    pubkey: str | None,
    head_source: str | None,
    mirror: str | None = None,
) -> None:
    """Prove that a curated dataset version is exactly what was fingerprinted and attested."""
    from dynamic_assets.defs.provenance.resources import build_attestation_resource
    from dynamic_assets.defs.resources import Resources
    from dynamic_assets.provenance.verify import load_proof, verify_proof, verify_version
    from dynamic_assets.read.curated import default_database

    if proof_file is None and not (dataset and version):
        raise click.UsageError("give DATASET VERSION, or --proof FILE")
    if proof_file is not None and (dataset or version):
        raise click.UsageError("give either DATASET VERSION or --proof FILE, not both")
    settings = Settings.from_env()
    if dataset:
        declared_dataset(load_declarations(settings.config_path), dataset)
    if mirror:
        if not (dataset and version):
            raise click.UsageError("--mirror needs DATASET VERSION")
        verify_mirror_command(
            default_database(settings),
            load_declarations(settings.config_path),
            dataset,
            version,
            mirror,
        )
    pinned, label = _pinned_key(pubkey, settings)
    head = _head(head_source, settings)
    drive = Resources.from_settings(settings).drive.get() if source else None
    ton_client = build_attestation_resource(settings).ton_client()
    if proof_file is not None:
        try:
            doc = load_proof(proof_file)
        except ValueError as exc:
            err.print(str(exc), markup=False, highlight=False)
            sys.exit(1)
        report = verify_proof(
            doc,
            drive=drive,
            pinned_key=pinned,
            pinned_label=label,
            ton_client=ton_client,
            head=head,
        )
    else:
        from dynamic_assets.lifecycle.archive import archive_reader
        from dynamic_assets.provenance.checks import ArchiveCopy

        assert dataset and version
        db = default_database(settings)

        def archive(dataset: str, version: str, record: dict) -> ArchiveCopy:
            # The drive is opened only for a version in the archive tier.
            archive_drive = drive or Resources.from_settings(settings).drive.get()
            return archive_reader(db, archive_drive)(dataset, version, record)

        def main_tier(dataset: str, version: str):
            from dynamic_assets.lifecycle.archive import registered
            from dynamic_assets.lifecycle.main_tier import main_connection, main_of

            with db.connect() as conn:
                found = main_of(registered(conn, dataset, version))
            return main_connection(found, f"{dataset} {version}")

        report = verify_version(
            db,
            dataset,
            version,
            drive=drive,
            pinned_key=pinned,
            pinned_label=label,
            ton_client=ton_client,
            head=head,
            archive=archive,
            main=main_tier,
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    sys.exit(0 if report.ok else 1)


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B"


@click.command()
@click.argument("dataset")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lineage(dataset: str, version: str, as_json: bool) -> None:
    """The chain from source files to curated rows, fingerprint, attestation and models."""
    from dynamic_assets.provenance.lineage import LineageNotFound
    from dynamic_assets.provenance.lineage import lineage as build
    from dynamic_assets.read.curated import default_database

    settings = Settings.from_env()
    declared_dataset(load_declarations(settings.config_path), dataset)
    try:
        data = build(default_database(settings), dataset, version)
    except LineageNotFound as exc:
        err.print(str(exc), markup=False, highlight=False)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    tree = Tree(f"[bold]datasets/{dataset}/{version}[/] ({data['status']})")
    files = tree.add(f"source files ({len(data['source_files'])})")
    for f in data["source_files"]:
        node = files.add(f"[bold]{f['path']}[/]")
        node.add(f"drive item {f['drive_item_id']}  eTag {f['etag']}")
        node.add(f"sha256 {f['sha256']}  {_size(f['size_bytes'])}")
        node.add(f"modified {f['modified_at']} by {f['modified_by'] or '(not recorded)'}")
        node.add(f"staging rows {f['staging_rows']:,} -> curated rows {f['curated_rows']:,}")
    steps = tree.add(f"steps ({len(data['steps'])})")
    for s in data["steps"]:
        style = "green" if s["status"] == "succeeded" else "red"
        line = (
            f"{s['started_at']}  {s['step']} [{style}]{s['status']}[/]  files {s['files']}  "
            f"rows {s['rows_loaded']}"
        )
        if s["rows_rejected"]:
            line += f"  rejected {s['rows_rejected']}"
        if s["error"]:
            line += f"  error: {s['error'][:200]}"
        steps.add(line)
    cur = data["curated"]
    tree.add(
        f"staging {data['staging']['table']}: {data['staging']['rows']:,} rows -> curated "
        f"{cur['table']}: {cur['rows']:,} rows (schema v{cur['schema_version']}, "
        f"{cur['sensitivity']}, curated {cur['curated_at']})"
    )
    fp = data["fingerprint"]
    if fp:
        node = tree.add(f"fingerprint [bold]{fp['fingerprint']}[/] ({fp['spec']})")
        node.add(f"content digest {fp['content_digest']}  rows {fp['rows']:,}")
        node.add(f"files checksum {fp['checksum']}  {_size(fp['size_bytes'])}")
    else:
        tree.add("[yellow]fingerprint: not computed yet[/]")
    at = data["attestation"]
    if at:
        node = tree.add(
            f"attestation: ledger entry {at['ledger_seq']} ({at['entry_hash']}), "
            f"leaf {at['leaf_index']} of {at['tree_size']}"
        )
        node.add(f"merkle root {at['merkle_root']}, written {at['created_at']}")
        node.add(f"signed by {at['public_key']}")
        node.add(f"proof file {at['proof_file'] or '(not written yet)'}")
        if at["ton"]:
            t = at["ton"]
            node.add(f"TON {t['network']} tx {t['tx_hash']} lt {t['tx_lt']} wallet {t['wallet']}")
        else:
            node.add("TON: not anchored")
    else:
        tree.add("[yellow]attestation: not attested yet[/]")
    models = tree.add(f"models trained on it ({len(data['models'])})")
    for m in data["models"]:
        models.add(f"{m['name']} {m['version']} ({m['framework'] or '-'}), {m['created_at']}")
    console.print(tree)


@click.group()
def attest() -> None:
    """The attestation ledger's signing key."""


@attest.command()
@click.option("--pem", is_flag=True, help="Print the public key as PEM instead of hex.")
def pubkey(pem: bool) -> None:
    """Print the public key that signs the ledger and proofs, for auditors to pin.

    The key is ATTESTATION_SIGNING_KEY, or the key file under DYNAMIC_ASSETS_HOME (created on
    first use). Only the public half is ever printed.
    """
    from dynamic_assets.defs.provenance.resources import build_attestation_resource
    from dynamic_assets.provenance.signing import SigningKeyError

    settings = Settings.from_env()
    try:
        key = build_attestation_resource(settings).signer()
    except SigningKeyError as exc:
        err.print(str(exc), markup=False, highlight=False)
        sys.exit(1)
    assert key is not None
    click.echo(key.public_pem().rstrip() if pem else key.public_key_hex)
    err.print(f"key id {key.key_id}, from {key.source}", markup=False, highlight=False)
