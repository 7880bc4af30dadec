"""The auditor's verifier: recompute and check, step by step, that a curated dataset version is
exactly what was attested.

Two modes:

- `verify_version(db, dataset, version)`: from Postgres. Recomputes the curated row count and
  content digest, compares the source files' recorded SHA-256 (and, with a drive, re-hashes the
  files themselves), checks the fingerprint record, the DSSE-signed statement, the Merkle proof,
  the ledger entry, the whole ledger's hash chain and signatures, and the TON anchor.
- `verify_proof(doc)`: from a proof document alone (no database): everything a proof can show.

With a signed ledger head the auditor kept (`head`), the database mode also checks that the
ledger still holds every entry up to the head's size, unchanged: the chain alone cannot show that
its newest entries were deleted.

Each step passes, fails (with a message saying what differs and what that means) or is skipped
(with the reason). A report is good only if no step failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg

from dynamic_assets.datasets.registry import not_registered
from dynamic_assets.db import Database
from dynamic_assets.drive.base import Drive
from dynamic_assets.provenance import attest, ledger
from dynamic_assets.provenance.checks import (
    FAIL,
    PASS,
    SKIP,
    ArchiveReader,
    Report,
    check_anchor,
    check_archive,
    check_entry,
    check_head,
    check_proof_shape,
    check_signer,
    check_source,
    copy_problems,
    short,
)
from dynamic_assets.provenance.fingerprint import (
    SPEC,
    FingerprintError,
    content_digest,
    fingerprint_of,
)
from dynamic_assets.provenance.ton.toncenter import TonCenterClient

# ---------------------------------------------------------------- database mode


def verify_version(
    db: Database,
    dataset: str,
    version: str,
    *,
    drive: Drive | None = None,
    pinned_key: str | None = None,
    pinned_label: str = "pinned key",
    ton_client: TonCenterClient | None = None,
    head: Any = None,
    archive: ArchiveReader | None = None,
    main: Callable[[str, str], AbstractContextManager[psycopg.Connection]] | None = None,
) -> Report:
    """Verify a curated version from Postgres (and the drive with `drive`, TON with a client,
    against a signed ledger head the auditor holds with `head`, a `ledger.Head` document). The
    rows of a version in the archive tier are the archive file's, read with `archive`; those of
    a version in the main tier are digested on the main database, connected with `main`."""
    report = Report(f"datasets/{dataset}/{version}", "database")
    with db.connect() as conn:
        row = conn.execute(
            """SELECT fingerprint, fingerprint_record, status, tier FROM public.datasets
                WHERE name = %s AND version = %s""",
            (dataset, version),
        ).fetchone()
        if row is None:
            where = "the datasets registry"
            report.add("record", FAIL, not_registered(conn, dataset, version, where))
            return report
        fp, record, status, tier = row
        report.fingerprint = fp
        if status != "curated" or not fp or not record:
            report.add(
                "record",
                FAIL,
                f"{dataset} {version} has no fingerprint yet (status {status}); "
                f"materialize provenance/{dataset}/fingerprint",
            )
            return report
        recomputed = fingerprint_of(record)
        if recomputed != fp:
            report.add(
                "record",
                FAIL,
                f"the registry's fingerprint record hashes to {short(recomputed)}, not to the "
                f"registry's fingerprint {short(fp)}: the registry row was edited",
            )
        elif record.get("dataset") != dataset or record.get("version") != version:
            report.add("record", FAIL, "the fingerprint record names another dataset version")
        else:
            report.add(
                "record",
                PASS,
                f"fingerprint {short(fp)} ({record.get('spec', SPEC)}), "
                f"{len(record['files'])} file(s), {record['rows']['count']:,} rows",
            )

        # Rows and content, recomputed inside Postgres (from the archive file when archived).
        if tier == "archive":
            check_archive(report, dataset, version, record, archive)
        elif tier == "main":
            _check_main(report, dataset, version, record, main)
        else:
            _check_core(report, conn, dataset, version, record)

        # Source files: what was recorded when they streamed in.
        ingest = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                """SELECT path, sha256, size_bytes FROM public.onedrive_ingest
                    WHERE dataset = %s AND version = %s AND status = 'curated'""",
                (dataset, version),
            ).fetchall()
        }
        bad = []
        for f in record["files"]:
            got = ingest.get(f["path"])
            if got is None:
                bad.append(f"{f['path']}: no longer recorded as a curated source file")
            elif got[0] != f["sha256"]:
                bad.append(
                    f"{f['path']}: recorded SHA-256 {short(got[0])}, fingerprinted {short(f['sha256'])}"
                )
        extra = sorted(set(ingest) - {f["path"] for f in record["files"]})
        if extra:
            bad.append(f"curated file(s) not in the fingerprint: {', '.join(extra)}")
        report.check("files", bad, f"{len(record['files'])} file(s) match onedrive_ingest")
        check_source(report, record, drive)

        doc = attest.proof_of(conn, dataset, version, fp)
        if doc is None:
            report.add(
                "proof",
                FAIL,
                f"fingerprint {short(fp)} is not attested yet: materialize "
                f"provenance/{dataset}/attestation",
            )
            return report
        if not check_proof_shape(report, doc):
            return report
        report.add(
            "proof", PASS, f"proof in dataset_proofs (ledger entry {doc['ledger_entry']['seq']})"
        )
        chain = ledger.entries(conn)

    seq = int(doc["ledger_entry"]["seq"])
    entry = next((e for e in chain if e.seq == seq), None)
    entry_key = entry.public_key if entry else str(doc["ledger_entry"].get("public_key", ""))
    check_signer(report, doc, entry_key, record, pinned_key, pinned_label)
    if entry is None:
        report.add(
            "entry",
            FAIL,
            f"ledger entry {seq}, which records this version's root, is not in the ledger: "
            "it was deleted",
        )
        report.add("merkle", SKIP, f"ledger entry {seq} is missing")
    else:
        check_entry(
            report,
            doc,
            entry,
            copy_problems(doc, entry),
            f"entry {seq} ({short(entry.entry_hash)}), written {entry.created_at}",
        )
    last = chain[-1] if chain else None
    report.check(
        "chain",
        ledger.chain_problems(chain),
        f"{len(chain)} entries linked from genesis, head {short(last.entry_hash if last else None)}",
    )
    if head is not None:
        check_head(report, chain, head, pinned_key)
    if entry is not None:
        check_anchor(report, entry, entry.anchor, ton_client)
    return report


def _check_main(
    report: Report,
    dataset: str,
    version: str,
    record: dict[str, Any],
    main: Callable[[str, str], AbstractContextManager[psycopg.Connection]] | None,
) -> None:
    """The `rows` and `content` steps of a version in the main tier: its partition digested on
    the main database."""
    if main is None:
        for name in ("rows", "content"):
            report.add(name, SKIP, f"{dataset} {version} is in the main tier: needs its database")
        return
    try:
        with main(dataset, version) as mconn:
            _check_core(report, mconn, dataset, version, record, tier="main")
    except (RuntimeError, ValueError, OSError, psycopg.Error) as exc:
        report.add("rows", FAIL, str(exc))
        report.add("content", SKIP, "the main tier could not be read")


def _check_core(
    report: Report,
    conn: psycopg.Connection,
    dataset: str,
    version: str,
    record: dict[str, Any],
    tier: str = "core",
) -> None:
    """The `rows` and `content` steps of a version in Postgres: its partition digested there."""
    try:
        content = content_digest(conn, dataset, version, record["schema"]["columns"])
    except FingerprintError as exc:
        report.add("rows", FAIL, str(exc))
        report.add("content", SKIP, "no rows to digest")
    else:
        want_rows = int(record["rows"]["count"])
        if content.rows != want_rows:
            diff = content.rows - want_rows
            what = "added" if diff > 0 else "deleted"
            report.add(
                "rows",
                FAIL,
                f"ai_curated.{dataset} version {version} ({tier} tier) has {content.rows:,} "
                f"rows, the fingerprint recorded {want_rows:,}: {abs(diff):,} row(s) {what}",
            )
        else:
            report.add("rows", PASS, f"{content.rows:,} rows in ai_curated.{dataset} ({tier} tier)")
        want = record["rows"]["content_digest"]
        if content.digest != want:
            report.add(
                "content",
                FAIL,
                f"the curated rows now digest to {short(content.digest)}, the fingerprint "
                f"recorded {short(want)}: a curated value was changed, added or removed",
            )
        else:
            report.add(
                "content",
                PASS,
                f"content digest {short(want)} recomputed in {content.seconds:.2f} s",
            )


# ---------------------------------------------------------------- proof mode


def load_proof(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the proof file ({exc})") from None


def verify_proof(
    doc: Any,
    *,
    drive: Drive | None = None,
    pinned_key: str | None = None,
    pinned_label: str = "pinned key",
    ton_client: TonCenterClient | None = None,
    head: Any = None,
) -> Report:
    """Verify a proof document alone: everything it can show without the database."""
    subject = (
        f"datasets/{doc.get('dataset')}/{doc.get('version')}" if isinstance(doc, dict) else "?"
    )
    report = Report(subject, "proof")
    if not check_proof_shape(report, doc):
        return report
    report.fingerprint = doc["fingerprint"]
    try:
        entry = ledger.Entry.from_dict(doc["ledger_entry"])
    except ledger.LedgerError as exc:
        report.add("proof", FAIL, str(exc))
        return report
    report.add("proof", PASS, f"{attest.PROOF_TYPE}, ledger entry {entry.seq}")
    stmt = check_signer(report, doc, entry.public_key, None, pinned_key, pinned_label)

    record = ((stmt or {}).get("predicate") or {}).get("fingerprint_record")
    if record is None:
        report.add("record", FAIL, "no signed fingerprint record to check")
    elif fingerprint_of(record) != doc["fingerprint"]:
        report.add(
            "record",
            FAIL,
            f"the signed record hashes to {short(fingerprint_of(record))}, "
            f"not the fingerprint {short(doc['fingerprint'])}",
        )
    else:
        report.add(
            "record",
            PASS,
            f"{len(record['files'])} file(s), {record['rows']['count']:,} rows hash to the fingerprint",
        )
    report.add("rows", SKIP, "needs the database: run `verify DATASET VERSION` there")
    report.add("content", SKIP, "needs the database: run `verify DATASET VERSION` there")
    if record is not None:
        check_source(report, record, drive)
    check_entry(
        report, doc, entry, [], f"entry {entry.seq} ({short(entry.entry_hash)}), signature valid"
    )
    report.add(
        "chain", SKIP, "needs the whole ledger: run `verify DATASET VERSION` with the database"
    )
    if head is not None:
        report.add(
            "head", SKIP, "needs the ledger's entries: run `verify DATASET VERSION --head` there"
        )
    check_anchor(report, entry, doc.get("anchor"), ton_client)
    return report
