"""The auditor's verifier: recompute and check, step by step, that a curated dataset version is
exactly what was attested.

Two modes:

- `verify_version(db, dataset, version)`: from Postgres. Recomputes the curated row count and
  content digest, compares the source files' recorded SHA-256 (and, with a drive, re-hashes the
  files themselves), checks the fingerprint record, the DSSE-signed statement, the Merkle proof,
  the ledger entry, the whole ledger's hash chain and signatures, and the TON anchor.
- `verify_proof(doc)`: from a proof document alone (no database): everything a proof can show.

Each step passes, fails (with a message saying what differs and what that means) or is skipped
(with the reason). A report is good only if no step failed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dynamic_assets.db import Database
from dynamic_assets.drive.base import Drive
from dynamic_assets.provenance import attest, dsse, ledger, merkle, ton
from dynamic_assets.provenance.fingerprint import (
    SPEC,
    FingerprintError,
    content_digest,
    fingerprint_of,
    sha256_file,
)
from dynamic_assets.provenance.signing import key_id

PASS, FAIL, SKIP = "pass", "fail", "skip"

# What each step proves, in the order they run (README "For auditors" explains them).
STEPS: dict[str, str] = {
    "proof": "the proof document is well formed",
    "record": "the fingerprint is the SHA-256 of its record (files, schema, rows)",
    "rows": "the curated table holds the recorded number of rows",
    "content": "the curated rows hash to the recorded content digest",
    "files": "the recorded SHA-256 of each source file is the fingerprinted one",
    "source": "the files in the drive still have the fingerprinted bytes",
    "key": "the signing key is the pinned one",
    "statement": "the in-toto statement is signed and names this version and fingerprint",
    "entry": "the ledger entry is unchanged: its hash, root and signature verify",
    "merkle": "the Merkle audit path leads from this version's leaf to the entry's root",
    "chain": "the whole ledger is intact: every entry links to the one before, all signed",
    "anchor": "the TON message is signed by the wallet and carries the entry's root",
    "ton": "the TON transaction exists on chain and carries the root",
}


@dataclass
class Step:
    name: str
    status: str
    detail: str

    @property
    def title(self) -> str:
        return STEPS.get(self.name, self.name)


@dataclass
class Report:
    subject: str
    mode: str  # database | proof
    fingerprint: str | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.status != FAIL for s in self.steps)

    @property
    def first_failure(self) -> Step | None:
        return next((s for s in self.steps if s.status == FAIL), None)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def add(self, name: str, status: str, detail: str) -> Step:
        s = Step(name, status, detail)
        self.steps.append(s)
        return s

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "mode": self.mode,
            "fingerprint": self.fingerprint,
            "ok": self.ok,
            "steps": [asdict(s) | {"title": s.title} for s in self.steps],
        }


def _short(h: str | None) -> str:
    return f"{h[:16]}…" if h else "(none)"


# ---------------------------------------------------------------- shared checks


def _check_source(report: Report, record: dict[str, Any], drive: Drive | None) -> None:
    if drive is None:
        report.add("source", SKIP, "not requested: --source re-hashes the files in the drive")
        return
    bad = []
    for f in record["files"]:
        try:
            with drive.open(f["path"]) as stream:
                sha, size = sha256_file(stream)
        except (FileNotFoundError, OSError, ValueError) as exc:
            bad.append(f"{f['path']}: cannot be read from {drive.describe()} ({exc})")
            continue
        if sha != f["sha256"]:
            bad.append(
                f"{f['path']}: its bytes now hash to {_short(sha)} ({size:,} bytes), the "
                f"fingerprint recorded {_short(f['sha256'])} ({f['size_bytes']:,} bytes): "
                "the file was changed after it was ingested"
            )
    if bad:
        report.add("source", FAIL, "; ".join(bad))
    else:
        report.add(
            "source", PASS, f"{len(record['files'])} file(s) re-hashed in {drive.describe()}"
        )


def _check_key(report: Report, entry_key: str, pinned: str | None, label: str) -> None:
    if not pinned:
        report.add(
            "key",
            SKIP,
            f"no key pinned (--pubkey): signatures are checked with the key the ledger names, "
            f"{key_id(entry_key) if entry_key else '?'} ({entry_key[:16]}…)",
        )
        return
    if entry_key != pinned:
        report.add(
            "key",
            FAIL,
            f"the ledger entry is signed by key {entry_key[:16]}…, not the {label} "
            f"{pinned[:16]}…: it was signed by another key",
        )
        return
    report.add("key", PASS, f"signed by the {label} {key_id(pinned)} ({pinned[:16]}…)")


def _check_statement(
    report: Report, doc: dict[str, Any], public_key: str, record: dict[str, Any] | None
) -> dict[str, Any] | None:
    try:
        stmt = dsse.verify_envelope(doc["envelope"], public_key)
    except (dsse.DsseError, KeyError, TypeError) as exc:
        report.add("statement", FAIL, f"DSSE envelope: {exc}")
        return None
    subject = (stmt.get("subject") or [{}])[0]
    want_name = dsse.subject_name(doc["dataset"], doc["version"])
    problems = []
    if subject.get("name") != want_name:
        problems.append(f"the statement is about {subject.get('name')!r}, not {want_name!r}")
    if (subject.get("digest") or {}).get("sha256") != doc["fingerprint"]:
        problems.append(
            f"the statement's digest {_short((subject.get('digest') or {}).get('sha256'))} "
            f"is not the fingerprint {_short(doc['fingerprint'])}"
        )
    if stmt.get("predicateType") != dsse.PREDICATE_TYPE:
        problems.append(f"unexpected predicateType {stmt.get('predicateType')!r}")
    if record is not None and (stmt.get("predicate") or {}).get("fingerprint_record") != record:
        problems.append("the signed fingerprint record differs from the registry's record")
    if problems:
        report.add("statement", FAIL, "; ".join(problems))
        return None
    report.add(
        "statement",
        PASS,
        f"in-toto Statement v1 about {want_name}, sha256 {_short(doc['fingerprint'])}, "
        f"DSSE signature by {key_id(public_key)}",
    )
    return stmt


def _check_merkle(report: Report, doc: dict[str, Any], entry: ledger.Entry) -> None:
    m = doc.get("merkle") or {}
    leaf = {"dataset": doc["dataset"], "version": doc["version"], "fingerprint": doc["fingerprint"]}
    try:
        index, size = int(m["leaf_index"]), int(m["tree_size"])
        path = [bytes.fromhex(h) for h in m["audit_path"]]
    except (KeyError, TypeError, ValueError) as exc:
        report.add("merkle", FAIL, f"the proof's Merkle section is malformed ({exc})")
        return
    problems = []
    if size != len(entry.leaves):
        problems.append(
            f"the proof says the tree has {size} leaves, entry {entry.seq} has {len(entry.leaves)}"
        )
    if not 0 <= index < len(entry.leaves) or entry.leaves[index] != leaf:
        problems.append(
            f"entry {entry.seq} does not hold this version's fingerprint as leaf {index}"
        )
    leaf_h = merkle.leaf_hash(ledger.leaf_data(leaf))
    try:
        got = merkle.root_from_path(index, size, leaf_h, path).hex()
    except merkle.MerkleError as exc:
        problems.append(f"the audit path is invalid: {exc}")
    else:
        if got != entry.merkle_root:
            problems.append(
                f"the audit path leads to root {_short(got)}, not entry {entry.seq}'s root "
                f"{_short(entry.merkle_root)}: the path or the leaf was changed"
            )
    if problems:
        report.add("merkle", FAIL, "; ".join(problems))
    else:
        report.add(
            "merkle",
            PASS,
            f"leaf {index} of {size}, {len(path)} hash(es) to root {_short(entry.merkle_root)}",
        )


def _check_anchor(
    report: Report, entry: ledger.Entry, anchor: dict[str, Any] | None, client: Any
) -> None:
    if not anchor:
        report.add(
            "anchor",
            SKIP,
            f"entry {entry.seq} is not anchored (TON anchoring was off, or not yet confirmed)",
        )
        report.add("ton", SKIP, "nothing to look up")
        return
    problems = ton.check_anchor_offline(anchor, entry.merkle_root, entry.seq)
    if problems:
        report.add("anchor", FAIL, "; ".join(problems))
    else:
        how = (
            "signed external message checked"
            if anchor.get("external_message_boc")
            else "found on chain by an earlier attempt; no message BOC recorded"
        )
        report.add(
            "anchor",
            PASS,
            f"{anchor.get('network')} wallet {anchor.get('wallet')}, tx {_short(anchor.get('tx_hash'))} "
            f"lt {anchor.get('tx_lt')}: {how}",
        )
    if client is None:
        report.add("ton", SKIP, "not looked up: no TON API configured (TON_API_URL)")
        return
    try:
        online = ton.check_anchor_online(client, anchor, entry.merkle_root, entry.seq)
    except ton.TonError as exc:
        report.add("ton", FAIL, f"could not look the transaction up: {exc}")
        return
    if online:
        report.add("ton", FAIL, "; ".join(online))
    else:
        report.add(
            "ton",
            PASS,
            f"transaction {_short(anchor.get('tx_hash'))} at lt {anchor.get('tx_lt')} found "
            f"through {client.describe()}, carrying root {_short(entry.merkle_root)}",
        )


def _check_proof_shape(report: Report, doc: Any) -> bool:
    needed = ("type", "dataset", "version", "fingerprint", "envelope", "merkle", "ledger_entry")
    if not isinstance(doc, dict):
        report.add("proof", FAIL, "the proof is not a JSON object")
        return False
    missing = [k for k in needed if k not in doc]
    if missing or doc.get("type") != attest.PROOF_TYPE:
        report.add(
            "proof",
            FAIL,
            f"not a {attest.PROOF_TYPE} document"
            + (f" (missing {', '.join(missing)})" if missing else f" (type {doc.get('type')!r})"),
        )
        return False
    return True


# ---------------------------------------------------------------- database mode


def verify_version(
    db: Database,
    dataset: str,
    version: str,
    *,
    drive: Drive | None = None,
    pinned_key: str | None = None,
    pinned_label: str = "pinned key",
    ton_client: ton.TonCenterClient | None = None,
) -> Report:
    """Verify a curated version from Postgres (and the drive with `drive`, TON with a client)."""
    report = Report(f"datasets/{dataset}/{version}", "database")
    with db.connect() as conn:
        row = conn.execute(
            """SELECT fingerprint, fingerprint_record, status FROM public.datasets
                WHERE name = %s AND version = %s""",
            (dataset, version),
        ).fetchone()
        if row is None:
            report.add("record", FAIL, f"{dataset} {version} is not in the datasets registry")
            return report
        fp, record, status = row
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
                f"the registry's fingerprint record hashes to {_short(recomputed)}, not to the "
                f"registry's fingerprint {_short(fp)}: the registry row was edited",
            )
        elif record.get("dataset") != dataset or record.get("version") != version:
            report.add("record", FAIL, "the fingerprint record names another dataset version")
        else:
            report.add(
                "record",
                PASS,
                f"fingerprint {_short(fp)} ({record.get('spec', SPEC)}), "
                f"{len(record['files'])} file(s), {record['rows']['count']:,} rows",
            )

        # Rows and content, recomputed inside Postgres.
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
                    f"ai_curated.{dataset} version {version} has {content.rows:,} rows, the "
                    f"fingerprint recorded {want_rows:,}: {abs(diff):,} row(s) {what}",
                )
            else:
                report.add("rows", PASS, f"{content.rows:,} rows in ai_curated.{dataset}")
            want = record["rows"]["content_digest"]
            if content.digest != want:
                report.add(
                    "content",
                    FAIL,
                    f"the curated rows now digest to {_short(content.digest)}, the fingerprint "
                    f"recorded {_short(want)}: a curated value was changed, added or removed",
                )
            else:
                report.add(
                    "content",
                    PASS,
                    f"content digest {_short(want)} recomputed in {content.seconds:.2f} s",
                )

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
                    f"{f['path']}: recorded SHA-256 {_short(got[0])}, fingerprinted {_short(f['sha256'])}"
                )
        extra = sorted(set(ingest) - {f["path"] for f in record["files"]})
        if extra:
            bad.append(f"curated file(s) not in the fingerprint: {', '.join(extra)}")
        if bad:
            report.add("files", FAIL, "; ".join(bad))
        else:
            report.add("files", PASS, f"{len(record['files'])} file(s) match onedrive_ingest")
        _check_source(report, record, drive)

        doc = attest.proof_of(conn, dataset, version, fp)
        if doc is None:
            report.add(
                "proof",
                FAIL,
                f"fingerprint {_short(fp)} is not attested yet: materialize "
                f"provenance/{dataset}/attestation",
            )
            return report
        if not _check_proof_shape(report, doc):
            return report
        report.add(
            "proof", PASS, f"proof in dataset_proofs (ledger entry {doc['ledger_entry']['seq']})"
        )
        chain = ledger.entries(conn)

    seq = int(doc["ledger_entry"]["seq"])
    entry = next((e for e in chain if e.seq == seq), None)
    entry_key = entry.public_key if entry else str(doc["ledger_entry"].get("public_key", ""))
    _check_key(report, entry_key, pinned_key, pinned_label)
    signer = pinned_key or entry_key
    _check_statement(report, doc, signer, record)
    if entry is None:
        report.add(
            "entry",
            FAIL,
            f"ledger entry {seq}, which records this version's root, is not in the ledger: "
            "it was deleted",
        )
        report.add("merkle", SKIP, f"ledger entry {seq} is missing")
    else:
        problems = ledger.entry_problems(entry)
        copy = ledger.Entry.from_dict(doc["ledger_entry"])
        if copy != entry:
            changed = [
                k
                for k, v in copy.to_dict(with_anchor=False).items()
                if entry.to_dict(with_anchor=False)[k] != v
            ]
            problems.append(
                f"entry {seq} in the ledger differs from the copy in the proof "
                f"({', '.join(changed)}): the ledger row was edited"
            )
        if problems:
            report.add("entry", FAIL, "; ".join(problems))
        else:
            report.add(
                "entry",
                PASS,
                f"entry {seq} ({_short(entry.entry_hash)}), written {entry.created_at}",
            )
        _check_merkle(report, doc, entry)
    problems = ledger.chain_problems(chain)
    if problems:
        report.add("chain", FAIL, "; ".join(problems))
    else:
        head = chain[-1] if chain else None
        report.add(
            "chain",
            PASS,
            f"{len(chain)} entries linked from genesis, head {_short(head.entry_hash if head else None)}",
        )
    if entry is not None:
        _check_anchor(report, entry, entry.anchor, ton_client)
    return report


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
    ton_client: ton.TonCenterClient | None = None,
) -> Report:
    """Verify a proof document alone: everything it can show without the database."""
    subject = (
        f"datasets/{doc.get('dataset')}/{doc.get('version')}" if isinstance(doc, dict) else "?"
    )
    report = Report(subject, "proof")
    if not _check_proof_shape(report, doc):
        return report
    report.fingerprint = doc["fingerprint"]
    try:
        entry = ledger.Entry.from_dict(doc["ledger_entry"])
    except ledger.LedgerError as exc:
        report.add("proof", FAIL, str(exc))
        return report
    report.add("proof", PASS, f"{attest.PROOF_TYPE}, ledger entry {entry.seq}")
    _check_key(report, entry.public_key, pinned_key, pinned_label)
    stmt = _check_statement(report, doc, pinned_key or entry.public_key, None)

    record = ((stmt or {}).get("predicate") or {}).get("fingerprint_record")
    if record is None:
        report.add("record", FAIL, "no signed fingerprint record to check")
    elif fingerprint_of(record) != doc["fingerprint"]:
        report.add(
            "record",
            FAIL,
            f"the signed record hashes to {_short(fingerprint_of(record))}, "
            f"not the fingerprint {_short(doc['fingerprint'])}",
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
        _check_source(report, record, drive)
    problems = ledger.entry_problems(entry)
    if problems:
        report.add("entry", FAIL, "; ".join(problems))
    else:
        report.add(
            "entry", PASS, f"entry {entry.seq} ({_short(entry.entry_hash)}), signature valid"
        )
    _check_merkle(report, doc, entry)
    report.add(
        "chain", SKIP, "needs the whole ledger: run `verify DATASET VERSION` with the database"
    )
    _check_anchor(report, entry, doc.get("anchor"), ton_client)
    return report
