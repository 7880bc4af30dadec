"""The attestation ledger: an append-only, hash-chained, signed table `public.attestations`.

Each entry records a Merkle root over a batch of fingerprint leaves. Its hash is the SHA-256 of
the canonical JSON of

    {"type": "dynamic-assets/ledger-entry/v1", "seq", "prev_hash", "merkle_root", "leaves",
     "created_at", "public_key"}

`prev_hash` is the previous entry's hash (64 zeros for the first entry), so editing or deleting
any entry breaks every later link. The signature is Ed25519 by the pipeline's key over the 32
raw bytes of the entry hash. `anchor` (the TON transaction) is recorded after the entry and is
outside the hash: it proves itself on chain.

Appends are serialized by a transaction-scoped advisory lock; triggers (migration 0003) refuse
UPDATE of hashed columns, DELETE and TRUNCATE, and `verify` catches whoever bypasses them.

The chain alone cannot show that its newest entries were removed: what is left still links from
genesis. A signed *head* can: after each append the pipeline signs

    {"type": "dynamic-assets/ledger-head/v1", "tree_size", "head_hash", "tree_root",
     "created_at", "public_key"}

(`head_hash` the hash of entry `tree_size`, `tree_root` the RFC 6962 root over the leaves
SHA-256(0x00 || 32 raw bytes of each entry hash) of entries 1..tree_size, `created_at` that
entry's time), Ed25519 over the canonical JSON bytes of that object, and publishes it. An auditor
who holds a head checks that the ledger still holds exactly those entries (`head_problems`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dynamic_assets.provenance import merkle
from dynamic_assets.provenance.canonical import canonical_json, canonical_sha256
from dynamic_assets.provenance.signing import SigningKey, verify_signature

ENTRY_TYPE = "dynamic-assets/ledger-entry/v1"
HEAD_TYPE = "dynamic-assets/ledger-head/v1"
GENESIS = "0" * 64
LEDGER_LOCK = 0x6461695F6C6467  # "dai_ldg"


class LedgerError(RuntimeError):
    """The ledger cannot be read or appended to; the message says which entry and why."""


def format_time(ts: datetime) -> str:
    """The canonical time of an entry: UTC, microseconds, `Z`."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def leaf_data(leaf: dict[str, Any]) -> bytes:
    """The bytes a leaf's Merkle hash is taken over: canonical JSON of
    {"dataset", "version", "fingerprint"}."""
    return canonical_json(
        {"dataset": leaf["dataset"], "version": leaf["version"], "fingerprint": leaf["fingerprint"]}
    )


def leaf_hashes(leaves: list[dict[str, Any]]) -> list[bytes]:
    return [merkle.leaf_hash(leaf_data(leaf)) for leaf in leaves]


@dataclass(frozen=True)
class Entry:
    seq: int
    prev_hash: str
    entry_hash: str
    merkle_root: str
    leaves: list[dict[str, Any]]
    created_at: str
    public_key: str
    signature: str
    anchor: dict[str, Any] | None = field(default=None, compare=False)

    def body(self) -> dict[str, Any]:
        """What the entry hash is taken over."""
        return entry_body(
            seq=self.seq,
            prev_hash=self.prev_hash,
            merkle_root=self.merkle_root,
            leaves=self.leaves,
            created_at=self.created_at,
            public_key=self.public_key,
        )

    def to_dict(self, *, with_anchor: bool = True) -> dict[str, Any]:
        d = {
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
            "merkle_root": self.merkle_root,
            "leaves": self.leaves,
            "created_at": self.created_at,
            "public_key": self.public_key,
            "signature": self.signature,
        }
        if with_anchor:
            d["anchor"] = self.anchor
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        try:
            return cls(
                seq=int(d["seq"]),
                prev_hash=str(d["prev_hash"]),
                entry_hash=str(d["entry_hash"]),
                merkle_root=str(d["merkle_root"]),
                leaves=list(d["leaves"]),
                created_at=str(d["created_at"]),
                public_key=str(d["public_key"]),
                signature=str(d["signature"]),
                anchor=d.get("anchor"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"not a ledger entry: missing or bad field {exc}") from None


def entry_body(
    *,
    seq: int,
    prev_hash: str,
    merkle_root: str,
    leaves: list[dict[str, Any]],
    created_at: str,
    public_key: str,
) -> dict[str, Any]:
    return {
        "type": ENTRY_TYPE,
        "seq": seq,
        "prev_hash": prev_hash,
        "merkle_root": merkle_root,
        "leaves": leaves,
        "created_at": created_at,
        "public_key": public_key,
    }


def entry_problems(entry: Entry) -> list[str]:
    """What is wrong with one entry on its own: its hash, its root over its leaves, its signature."""
    problems = []
    try:
        recomputed = canonical_sha256(entry.body())
    except ValueError as exc:
        return [f"entry {entry.seq}: its contents cannot be hashed ({exc})"]
    if recomputed != entry.entry_hash:
        problems.append(
            f"entry {entry.seq}: its contents hash to {recomputed[:16]}…, not to its recorded "
            f"entry_hash {entry.entry_hash[:16]}…: the entry was edited after it was written"
        )
    try:
        root = merkle.root(leaf_hashes(entry.leaves)).hex()
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"entry {entry.seq}: its leaves are malformed ({exc})")
    else:
        if root != entry.merkle_root:
            problems.append(
                f"entry {entry.seq}: its {len(entry.leaves)} leaves give Merkle root "
                f"{root[:16]}…, not the recorded {entry.merkle_root[:16]}…"
            )
    try:
        sig = bytes.fromhex(entry.signature)
        signed = bytes.fromhex(entry.entry_hash)
    except ValueError:
        problems.append(f"entry {entry.seq}: the signature or entry_hash is not hex")
    else:
        if not verify_signature(entry.public_key, sig, signed):
            problems.append(
                f"entry {entry.seq}: the signature does not verify with the entry's key "
                f"{entry.public_key[:16]}…: signed by another key, or changed after signing"
            )
    return problems


def chain_problems(entries: list[Entry]) -> list[str]:
    """What is wrong with the whole chain: gaps, broken links, and each entry's own problems."""
    problems: list[str] = []
    prev_hash = GENESIS
    expected_seq = 1
    for e in entries:
        if e.seq != expected_seq:
            missing = (
                f"entry {expected_seq}"
                if e.seq == expected_seq + 1
                else f"entries {expected_seq}-{e.seq - 1}"
            )
            problems.append(
                f"{missing} missing: the ledger jumps from {expected_seq - 1} to {e.seq}"
            )
        if e.prev_hash != prev_hash:
            problems.append(
                f"entry {e.seq}: prev_hash {e.prev_hash[:16]}… does not match the hash of the "
                f"entry before it ({prev_hash[:16]}…): an earlier entry was changed or removed"
            )
        problems.extend(entry_problems(e))
        prev_hash = e.entry_hash
        expected_seq = e.seq + 1
    return problems


def tree_root(chain: list[Entry]) -> str:
    """The RFC 6962 root over the entry hashes of `chain` (each leaf: its 32 raw bytes)."""
    return merkle.root([merkle.leaf_hash(bytes.fromhex(e.entry_hash)) for e in chain]).hex()


@dataclass(frozen=True)
class Head:
    """A signed statement of the ledger's size and newest entry at one moment."""

    tree_size: int
    head_hash: str
    tree_root: str
    created_at: str
    public_key: str
    signature: str

    def body(self) -> dict[str, Any]:
        """What the signature is over (as canonical JSON bytes)."""
        return {
            "type": HEAD_TYPE,
            "tree_size": self.tree_size,
            "head_hash": self.head_hash,
            "tree_root": self.tree_root,
            "created_at": self.created_at,
            "public_key": self.public_key,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.body() | {"signature": self.signature}

    @classmethod
    def from_dict(cls, d: Any) -> Head:
        if not isinstance(d, dict) or d.get("type") != HEAD_TYPE:
            raise LedgerError(f"not a {HEAD_TYPE} document")
        try:
            return cls(
                tree_size=int(d["tree_size"]),
                head_hash=str(d["head_hash"]),
                tree_root=str(d["tree_root"]),
                created_at=str(d["created_at"]),
                public_key=str(d["public_key"]),
                signature=str(d["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"not a ledger head: missing or bad field {exc}") from None

    def signature_valid(self) -> bool:
        try:
            sig = bytes.fromhex(self.signature)
        except ValueError:
            return False
        return verify_signature(self.public_key, sig, canonical_json(self.body()))


def sign_head(chain: list[Entry], key: SigningKey) -> Head:
    """The head of `chain` (entries 1..n in order), signed with `key`."""
    if not chain:
        raise LedgerError("an empty ledger has no head")
    last = chain[-1]
    body = Head(
        len(chain), last.entry_hash, tree_root(chain), last.created_at, key.public_key_hex, ""
    ).body()
    signature = key.sign(canonical_json(body)).hex()
    return Head.from_dict(body | {"signature": signature})


def head_problems(chain: list[Entry], head: Head, pinned_key: str | None = None) -> list[str]:
    """How the ledger `chain` (entries in order) fails to extend the signed `head`: its
    signature, then every entry up to the head's size present, linked and hashing to the head."""
    if pinned_key and head.public_key != pinned_key:
        return [
            f"the head is signed by key {head.public_key[:16]}…, not the pinned key "
            f"{pinned_key[:16]}…"
        ]
    if not head.signature_valid():
        return [
            f"the head's signature does not verify with its key {head.public_key[:16]}…: "
            "the head file was changed after it was signed"
        ]
    n = head.tree_size
    prefix = [e for e in chain if e.seq <= n]
    present = {e.seq for e in prefix}
    missing = [s for s in range(1, n + 1) if s not in present]
    if missing:
        last = max(present, default=0)
        what = f"entry {missing[0]}" if len(missing) == 1 else f"entries {_ranges(missing)}"
        return [
            f"{what} missing: the ledger ends at entry {last}, the signed head you hold records "
            f"{n} entries (head {head.head_hash[:16]}…, {head.created_at}): removed after the "
            "head was published"
            if last < n
            else f"{what} missing: the signed head you hold records {n} entries"
        ]
    problems = []
    if prefix[-1].entry_hash != head.head_hash:
        problems.append(
            f"entry {n} hashes to {prefix[-1].entry_hash[:16]}…, not the head's "
            f"{head.head_hash[:16]}…: the entry was replaced after the head was published"
        )
    problems.extend(chain_problems(prefix))
    root = tree_root(prefix)
    if root != head.tree_root:
        problems.append(
            f"entries 1-{n} give tree root {root[:16]}…, not the head's {head.tree_root[:16]}…: "
            "an entry at or before the head was rewritten"
        )
    return problems


def _ranges(seqs: list[int]) -> str:
    out, start, prev = [], seqs[0], seqs[0]
    for s in [*seqs[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ", ".join(out)


_COLUMNS = (
    "seq, prev_hash, entry_hash, merkle_root, leaves, created_at, public_key, signature, anchor"
)


def _from_row(row: tuple) -> Entry:
    seq, prev, h, root, leaves, created, pub, sig, anchor = row
    return Entry(int(seq), prev, h, root, list(leaves), format_time(created), pub, sig, anchor)


def entries(conn: psycopg.Connection) -> list[Entry]:
    """Every ledger entry, in order."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM public.attestations ORDER BY seq").fetchall()
    return [_from_row(r) for r in rows]


def get_entry(conn: psycopg.Connection, seq: int) -> Entry | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM public.attestations WHERE seq = %s", (seq,)
    ).fetchone()
    return _from_row(row) if row else None


def append(
    conn: psycopg.Connection,
    merkle_root: str,
    leaves: list[dict[str, Any]],
    key: SigningKey,
    *,
    now: datetime | None = None,
) -> Entry:
    """Append one signed entry recording `merkle_root` over `leaves`.

    Runs inside the caller's transaction (it takes the ledger lock until that transaction ends),
    so the caller can record what depends on the entry atomically with it.
    """
    if conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        raise LedgerError("append must run inside a transaction (it holds the ledger lock)")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK,))
    last = conn.execute(
        "SELECT seq, entry_hash, created_at FROM public.attestations ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    seq = int(last[0]) + 1 if last else 1
    prev = last[1] if last else GENESIS
    ts = (now or datetime.now(UTC)).astimezone(UTC)
    if last and ts <= last[2]:
        ts = last[2] + timedelta(microseconds=1)  # times never go backwards along the chain
    created = format_time(ts)
    body = entry_body(
        seq=seq,
        prev_hash=prev,
        merkle_root=merkle_root,
        leaves=leaves,
        created_at=created,
        public_key=key.public_key_hex,
    )
    entry_hash = canonical_sha256(body)
    signature = key.sign(bytes.fromhex(entry_hash)).hex()
    conn.execute(
        """INSERT INTO public.attestations
               (seq, prev_hash, entry_hash, merkle_root, leaves, created_at, public_key, signature)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (seq, prev, entry_hash, merkle_root, Jsonb(leaves), ts, key.public_key_hex, signature),
    )
    return Entry(seq, prev, entry_hash, merkle_root, leaves, created, key.public_key_hex, signature)


def record_anchor(conn: psycopg.Connection, seq: int, anchor: dict[str, Any]) -> None:
    """Record the TON transaction that carries entry `seq`'s root (once)."""
    cur = conn.execute(
        "UPDATE public.attestations SET anchor = %s WHERE seq = %s AND anchor IS NULL",
        (Jsonb(anchor), seq),
    )
    if cur.rowcount != 1:
        raise LedgerError(f"entry {seq} does not exist or is already anchored")


def unanchored(conn: psycopg.Connection) -> list[Entry]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM public.attestations WHERE anchor IS NULL ORDER BY seq"
    ).fetchall()
    return [_from_row(r) for r in rows]
