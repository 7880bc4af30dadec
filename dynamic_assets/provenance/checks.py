"""The steps of an auditor's verification and the report they fill: each step passes, fails
(saying what differs and what that means) or is skipped (saying why). The checks here serve both
the database and the proof-file verification (`verify`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from dynamic_assets.drive.base import Drive
from dynamic_assets.formats.hashing import sha256_stream
from dynamic_assets.provenance import attest, dsse, ledger, merkle
from dynamic_assets.provenance.signing import key_id
from dynamic_assets.provenance.ton.anchor import check_anchor_offline, check_anchor_online
from dynamic_assets.provenance.ton.errors import TonError
from dynamic_assets.provenance.ton.toncenter import TonCenterClient

PASS, FAIL, SKIP = "pass", "fail", "skip"

# What each step proves, in the order they run (README "For auditors" explains them).
STEPS: dict[str, str] = {
    "proof": "the proof document is well formed",
    "record": "the fingerprint is the SHA-256 of its record (files, schema, rows)",
    "rows": "the curated table holds the recorded number of rows",
    "content": "the curated rows hash to the recorded content digest",
    "archive": "the archive file in the drive is the one written when the version was archived",
    "files": "the recorded SHA-256 of each source file is the fingerprinted one",
    "source": "the files in the drive still have the fingerprinted bytes",
    "key": "the signing key is the pinned one",
    "statement": "the in-toto statement is signed and names this version and fingerprint",
    "entry": "the ledger entry is unchanged: its hash, root and signature verify",
    "merkle": "the Merkle audit path leads from this version's leaf to the entry's root",
    "chain": "the whole ledger is intact: every entry links to the one before, all signed",
    "head": "the ledger still holds, unchanged, every entry of the signed head you hold",
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

    def check(self, name: str, problems: list[str], detail: str) -> Step:
        """Step `name` fails with the problems found, or passes with `detail` when none were."""
        if problems:
            return self.add(name, FAIL, "; ".join(problems))
        return self.add(name, PASS, detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "mode": self.mode,
            "fingerprint": self.fingerprint,
            "ok": self.ok,
            "steps": [asdict(s) | {"title": s.title} for s in self.steps],
        }


def short(h: str | None) -> str:
    """The first 16 hex digits of a hash, for messages."""
    return f"{h[:16]}…" if h else "(none)"


@dataclass(frozen=True)
class ArchiveCopy:
    """An archived version's Parquet file as read back from the drive: where it is, whether its
    SHA-256 is the one recorded when it was archived, and its rows' count and content digest
    recomputed in Postgres (`rows`/`digest` None, with `problem`, when it could not be loaded)."""

    path: str
    sha256_matches: bool
    rows: int | None = None
    digest: str | None = None
    problem: str | None = None


class ArchiveReader(Protocol):
    """Reads an archived version's copy from the drive and digests its rows against `record`;
    raises ValueError or OSError, with a message naming the version and tier, when it cannot."""

    def __call__(self, dataset: str, version: str, record: dict[str, Any]) -> ArchiveCopy: ...


def check_archive(
    report: Report,
    dataset: str,
    version: str,
    record: dict[str, Any],
    reader: ArchiveReader | None,
) -> None:
    """The `rows`, `content` and `archive` steps of a version in the archive tier: its rows are
    the archive file's, loaded and digested beside the (empty) core partition."""
    if reader is None:
        for name in ("rows", "content", "archive"):
            report.add(name, SKIP, f"{dataset} {version} is archived: needs the drive's archive")
        return
    try:
        copy = reader(dataset, version, record)
    except (ValueError, OSError) as exc:
        report.add("rows", FAIL, str(exc))
        report.add("content", SKIP, "the archive file could not be read")
        report.add("archive", SKIP, "the archive file could not be read")
        return
    where = f"the archive file {copy.path}"
    want_rows = int(record["rows"]["count"])
    want = record["rows"]["content_digest"]
    if copy.rows is None or copy.digest is None:
        report.add("rows", FAIL, f"{dataset} {version} (archive tier): {where} {copy.problem}")
        report.add("content", SKIP, "no rows to digest")
    else:
        if copy.rows != want_rows:
            report.add(
                "rows",
                FAIL,
                f"{where} holds {copy.rows:,} rows of {dataset} {version}, the fingerprint "
                f"recorded {want_rows:,}",
            )
        else:
            report.add("rows", PASS, f"{copy.rows:,} rows in {where} (archive tier)")
        if copy.digest != want:
            report.add(
                "content",
                FAIL,
                f"the rows of {where} (archive tier) digest to {short(copy.digest)}, the "
                f"fingerprint recorded {short(want)}: an archived value was changed, added or "
                "removed",
            )
        else:
            report.add("content", PASS, f"content digest {short(want)} recomputed from {where}")
    if copy.sha256_matches:
        report.add("archive", PASS, f"{where} has the SHA-256 recorded when it was archived")
    else:
        report.add(
            "archive",
            FAIL,
            f"{where} is not the file written when {dataset} {version} was archived (its "
            "SHA-256 differs): read_curated and restore refuse it",
        )


def check_source(report: Report, record: dict[str, Any], drive: Drive | None) -> None:
    """The `source` step: re-hash the files in the drive (skipped without a drive)."""
    if drive is None:
        report.add("source", SKIP, "not requested: --source re-hashes the files in the drive")
        return
    bad = []
    for f in record["files"]:
        try:
            with drive.open(f["path"]) as stream:
                sha, size = sha256_stream(stream)
        except (FileNotFoundError, OSError, ValueError) as exc:
            bad.append(f"{f['path']}: cannot be read from {drive.describe()} ({exc})")
            continue
        if sha != f["sha256"]:
            bad.append(
                f"{f['path']}: its bytes now hash to {short(sha)} ({size:,} bytes), the "
                f"fingerprint recorded {short(f['sha256'])} ({f['size_bytes']:,} bytes): "
                "the file was changed after it was ingested"
            )
    report.check("source", bad, f"{len(record['files'])} file(s) re-hashed in {drive.describe()}")


def check_key(report: Report, entry_key: str, pinned: str | None, label: str) -> None:
    """The `key` step: the entry's signing key is the pinned one (skipped when none is pinned)."""
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


def check_statement(
    report: Report, doc: dict[str, Any], public_key: str, record: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The `statement` step: the DSSE envelope verifies and names this version and fingerprint;
    returns the statement when it passes."""
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
            f"the statement's digest {short((subject.get('digest') or {}).get('sha256'))} "
            f"is not the fingerprint {short(doc['fingerprint'])}"
        )
    if stmt.get("predicateType") != dsse.PREDICATE_TYPE:
        problems.append(f"unexpected predicateType {stmt.get('predicateType')!r}")
    if record is not None and (stmt.get("predicate") or {}).get("fingerprint_record") != record:
        problems.append("the signed fingerprint record differs from the registry's record")
    step = report.check(
        "statement",
        problems,
        f"in-toto Statement v1 about {want_name}, sha256 {short(doc['fingerprint'])}, "
        f"DSSE signature by {key_id(public_key)}",
    )
    return stmt if step.status == PASS else None


def check_merkle(report: Report, doc: dict[str, Any], entry: ledger.Entry) -> None:
    """The `merkle` step: the proof's audit path leads from this version's leaf to the root."""
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
                f"the audit path leads to root {short(got)}, not entry {entry.seq}'s root "
                f"{short(entry.merkle_root)}: the path or the leaf was changed"
            )
    report.check(
        "merkle",
        problems,
        f"leaf {index} of {size}, {len(path)} hash(es) to root {short(entry.merkle_root)}",
    )


def check_anchor(
    report: Report,
    entry: ledger.Entry,
    anchor: dict[str, Any] | None,
    client: TonCenterClient | None,
) -> None:
    """The `anchor` step (offline) and the `ton` step (the transaction, through `client`)."""
    if not anchor:
        report.add(
            "anchor",
            SKIP,
            f"entry {entry.seq} is not anchored (TON anchoring was off, or not yet confirmed)",
        )
        report.add("ton", SKIP, "nothing to look up")
        return
    how = (
        "signed external message checked"
        if anchor.get("external_message_boc")
        else "found on chain by an earlier attempt; no message BOC recorded"
    )
    report.check(
        "anchor",
        check_anchor_offline(anchor, entry.merkle_root, entry.seq),
        f"{anchor.get('network')} wallet {anchor.get('wallet')}, tx {short(anchor.get('tx_hash'))} "
        f"lt {anchor.get('tx_lt')}: {how}",
    )
    if client is None:
        report.add("ton", SKIP, "not looked up: no TON API configured (TON_API_URL)")
        return
    try:
        online = check_anchor_online(client, anchor, entry.merkle_root, entry.seq)
    except TonError as exc:
        report.add("ton", FAIL, f"could not look the transaction up: {exc}")
        return
    report.check(
        "ton",
        online,
        f"transaction {short(anchor.get('tx_hash'))} at lt {anchor.get('tx_lt')} found "
        f"through {client.describe()}, carrying root {short(entry.merkle_root)}",
    )


def check_signer(
    report: Report,
    doc: dict[str, Any],
    entry_key: str,
    record: dict[str, Any] | None,
    pinned_key: str | None,
    pinned_label: str,
) -> dict[str, Any] | None:
    """The `key` and `statement` steps: who signed, and what the signed statement says."""
    check_key(report, entry_key, pinned_key, pinned_label)
    return check_statement(report, doc, pinned_key or entry_key, record)


def check_entry(
    report: Report, doc: dict[str, Any], entry: ledger.Entry, extra: list[str], detail: str
) -> None:
    """The `entry` step (its hash, root and signature, and `extra` problems), then `merkle`."""
    report.check("entry", ledger.entry_problems(entry) + extra, detail)
    check_merkle(report, doc, entry)


def copy_problems(doc: dict[str, Any], entry: ledger.Entry) -> list[str]:
    """How the ledger's entry differs from the copy of it in the proof."""
    copy = ledger.Entry.from_dict(doc["ledger_entry"])
    if copy == entry:
        return []
    theirs = entry.to_dict(with_anchor=False)
    changed = [k for k, v in copy.to_dict(with_anchor=False).items() if theirs[k] != v]
    return [
        f"entry {entry.seq} in the ledger differs from the copy in the proof "
        f"({', '.join(changed)}): the ledger row was edited"
    ]


def check_head(
    report: Report, chain: list[ledger.Entry], head: Any, pinned_key: str | None
) -> None:
    """The `head` step: the ledger extends the signed head the auditor holds (its size, newest
    hash and tree root), so no entry at or before it was removed or rewritten."""
    try:
        h = ledger.Head.from_dict(head)
    except ledger.LedgerError as exc:
        report.add("head", FAIL, f"the head you gave cannot be read: {exc}")
        return
    report.check(
        "head",
        ledger.head_problems(chain, h, pinned_key),
        f"entries 1-{h.tree_size} match the head signed by key {key_id(h.public_key)} "
        f"(entry {h.tree_size} {short(h.head_hash)}, root {short(h.tree_root)}); the ledger "
        f"now holds {len(chain)}",
    )


def check_proof_shape(report: Report, doc: Any) -> bool:
    """The `proof` step fails when `doc` is not a proof document; True when it is one."""
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
