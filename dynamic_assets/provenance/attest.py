"""Attesting fingerprints: batch the ones not yet attested into a Merkle tree, append one signed
ledger entry with its root, and give each dataset version its proof document.

A proof document (`dynamic-assets/proof/v1`) holds everything an auditor needs without the
database:

    envelope      DSSE v1 envelope of an in-toto Statement v1: subject = the dataset version
                  with its fingerprint as sha256 digest; predicate = the fingerprint record and
                  the ledger position; signed with the pipeline's key
    merkle        the leaf, its index, the tree size, the RFC 6962 audit path and the root
    ledger_entry  the signed ledger entry that records the root
    anchor        the TON transaction carrying the root, once confirmed (else null)

Proofs are stored in `dataset_proofs` and written to the drive under `reports/attestations/`.
After each append the ledger's signed head (`ledger.Head`) is published beside them as
`reports/attestations/heads/<tree size>.json` and `heads/latest.json`: an auditor who keeps one
can later tell whether any entry up to that size was removed or rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from dynamic_assets.drive.base import Drive
from dynamic_assets.provenance import dsse, ledger, merkle
from dynamic_assets.provenance.fingerprint import SPEC
from dynamic_assets.provenance.signing import SigningKey

PROOF_TYPE = "dynamic-assets/proof/v1"
REPORTS_FOLDER = "reports/attestations"
HEADS_FOLDER = f"{REPORTS_FOLDER}/heads"
LATEST_HEAD = f"{HEADS_FOLDER}/latest.json"
PROJECT = "dynamic-capital"


class AttestationError(RuntimeError):
    """Attesting failed; the message says which dataset version or entry and why."""


@dataclass(frozen=True)
class Batch:
    """One ledger entry and the proof documents of the versions it attests."""

    entry: ledger.Entry
    proofs: list[dict[str, Any]]


def pending(conn: psycopg.Connection) -> list[tuple[str, str, str, dict]]:
    """Fingerprinted curated versions whose current fingerprint has no proof yet."""
    rows = conn.execute(
        """SELECT d.name, d.version, d.fingerprint, d.fingerprint_record
             FROM public.datasets d
            WHERE d.status = 'curated' AND d.fingerprint IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM public.dataset_proofs p
                               WHERE p.dataset = d.name AND p.version = d.version
                                 AND p.fingerprint = d.fingerprint)
            ORDER BY d.name, d.version"""
    ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def build_proof(
    entry: ledger.Entry, index: int, record: dict[str, Any], key: SigningKey
) -> dict[str, Any]:
    """The proof document of leaf `index` of `entry`."""
    leaf = entry.leaves[index]
    hashes = ledger.leaf_hashes(entry.leaves)
    path = merkle.audit_path(index, hashes)
    predicate = {
        "fingerprint_spec": SPEC,
        "fingerprint_record": record,
        "ledger": {
            "seq": entry.seq,
            "entry_hash": entry.entry_hash,
            "merkle_root": entry.merkle_root,
            "leaf_index": index,
            "tree_size": len(entry.leaves),
            "created_at": entry.created_at,
        },
    }
    stmt = dsse.statement(leaf["dataset"], leaf["version"], leaf["fingerprint"], predicate)
    return {
        "type": PROOF_TYPE,
        "dataset": leaf["dataset"],
        "version": leaf["version"],
        "fingerprint": leaf["fingerprint"],
        "envelope": dsse.sign_envelope(stmt, key),
        "merkle": {
            "algorithm": "RFC 6962, SHA-256",
            "leaf": leaf,
            "leaf_hash": hashes[index].hex(),
            "leaf_index": index,
            "tree_size": len(entry.leaves),
            "audit_path": [h.hex() for h in path],
            "root": entry.merkle_root,
        },
        "ledger_entry": entry.to_dict(with_anchor=False),
        "anchor": entry.anchor,
    }


def attest_pending(
    conn: psycopg.Connection, key: SigningKey, *, now: datetime | None = None
) -> Batch | None:
    """Attest every pending fingerprint in one ledger entry; None when nothing is pending.

    The entry and the proofs are written in one transaction under the ledger lock, so two runs
    at once never attest the same fingerprint twice.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ledger.LEDGER_LOCK,))
        rows = pending(conn)
        if not rows:
            return None
        for name, version, fp, record in rows:
            if not record:
                raise AttestationError(
                    f"{name} {version}: fingerprint {fp[:16]}… has no stored record; "
                    "materialize its fingerprint asset again"
                )
        leaves = [{"dataset": n, "version": v, "fingerprint": fp} for n, v, fp, _ in rows]
        root = merkle.root(ledger.leaf_hashes(leaves)).hex()
        entry = ledger.append(conn, root, leaves, key, now=now)
        proofs = []
        for i, (name, version, fp, record) in enumerate(rows):
            doc = build_proof(entry, i, record, key)
            conn.execute(
                """INSERT INTO public.dataset_proofs
                       (dataset, version, fingerprint, ledger_seq, leaf_index, tree_size, proof)
                   VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                (name, version, fp, entry.seq, i, len(leaves), Jsonb(doc)),
            )
            proofs.append(doc)
    return Batch(entry, proofs)


def proof_of(
    conn: psycopg.Connection, dataset: str, version: str, fingerprint: str | None = None
) -> dict[str, Any] | None:
    """The proof document of a version's fingerprint (its current one when not given)."""
    if fingerprint is None:
        row = conn.execute(
            "SELECT fingerprint FROM public.datasets WHERE name = %s AND version = %s",
            (dataset, version),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        fingerprint = row[0]
    row = conn.execute(
        """SELECT proof FROM public.dataset_proofs
            WHERE dataset = %s AND version = %s AND fingerprint = %s""",
        (dataset, version, fingerprint),
    ).fetchone()
    return row[0] if row else None


def proofs_of_entry(conn: psycopg.Connection, seq: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT proof FROM public.dataset_proofs WHERE ledger_seq = %s ORDER BY leaf_index",
        (seq,),
    ).fetchall()
    return [r[0] for r in rows]


def proof_file_path(doc: dict[str, Any]) -> str:
    """Where a proof goes in the drive, named
    `[project]_[entity]_[version]_[timestamp]_[platform-hint].json`."""
    created = doc["ledger_entry"]["created_at"]  # 2024-06-01T12:00:00.123456Z
    stamp = created[:19].replace("-", "").replace(":", "") + "Z"
    ds, ver = doc["dataset"], doc["version"]
    name = f"{PROJECT}_attestation_{ds}-{ver}_{stamp}_intoto.json"
    return f"{REPORTS_FOLDER}/{ds}/{ver}/{name}"


def proof_bytes(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_proof_file(conn: psycopg.Connection, drive: Drive, doc: dict[str, Any]) -> str:
    """Write (or refresh) a proof document in the drive and record where; returns the path."""
    path = proof_file_path(doc)
    data = proof_bytes(doc)
    try:
        with drive.open(path) as f:
            same = f.read() == data
    except (FileNotFoundError, OSError):
        same = False
    if not same:
        drive.write_bytes(path, data, overwrite=True)
    conn.execute(
        """UPDATE public.dataset_proofs SET drive_path = %s, updated_at = now()
            WHERE dataset = %s AND version = %s AND fingerprint = %s
              AND drive_path IS DISTINCT FROM %s""",
        (path, doc["dataset"], doc["version"], doc["fingerprint"], path),
    )
    return path


def record_anchor(conn: psycopg.Connection, seq: int, anchor: dict[str, Any]) -> list[dict]:
    """Record entry `seq`'s TON anchor in the ledger and in its proofs; returns those proofs."""
    with conn.transaction():
        ledger.record_anchor(conn, seq, anchor)
        conn.execute(
            """UPDATE public.dataset_proofs
                  SET proof = jsonb_set(proof, '{anchor}', %s), updated_at = now()
                WHERE ledger_seq = %s""",
            (Jsonb(anchor), seq),
        )
    return proofs_of_entry(conn, seq)


def head_path(tree_size: int) -> str:
    return f"{HEADS_FOLDER}/{tree_size}.json"


def _read(drive: Drive, path: str) -> bytes | None:
    try:
        with drive.open(path) as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def _head_in(data: bytes | None) -> ledger.Head | None:
    if data is None:
        return None
    try:
        return ledger.Head.from_dict(json.loads(data))
    except (ValueError, ledger.LedgerError):
        return None


def publish_head(conn: psycopg.Connection, drive: Drive, key: SigningKey) -> ledger.Head | None:
    """Sign the ledger's current head and write it to the drive (its own file and `latest.json`);
    None for an empty ledger.

    Refuses (AttestationError) to sign a ledger whose chain is broken or that no longer extends
    the head already published as `latest.json`, so a head never vouches for a rewritten ledger.
    A head of the same size signs to the same bytes (Ed25519 is deterministic), so publishing
    again changes nothing.
    """
    chain = ledger.entries(conn)
    if not chain:
        return None
    problems = ledger.chain_problems(chain)
    published = _head_in(_read(drive, LATEST_HEAD))
    if published is not None and published.signature_valid():
        problems += ledger.head_problems(chain, published)
    if problems:
        raise AttestationError(
            "the ledger is not intact, no head is signed over it: " + "; ".join(problems)
        )
    head = ledger.sign_head(chain, key)
    data = proof_bytes(head.to_dict())
    if _read(drive, head_path(head.tree_size)) != data:
        drive.write_bytes(head_path(head.tree_size), data, overwrite=True)
    newer = published is None or published.tree_size <= head.tree_size
    if newer and _read(drive, LATEST_HEAD) != data:
        drive.write_bytes(LATEST_HEAD, data, overwrite=True)
    return head


def newest_head_in(drive: Drive) -> dict[str, Any] | None:
    """The published head with the largest tree size in the drive (None when there is none)."""
    best: tuple[int, dict[str, Any]] | None = None
    try:
        items = [i for i in drive.list_tree(HEADS_FOLDER) if not i.is_folder]
    except (FileNotFoundError, OSError):
        return None
    for item in items:
        if not item.name.endswith(".json"):
            continue
        data = _read(drive, item.path)
        try:
            doc = json.loads(data) if data is not None else None
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        size = doc.get("tree_size")
        if isinstance(size, int) and (best is None or size > best[0]):
            best = (size, doc)
    return best[1] if best else None
