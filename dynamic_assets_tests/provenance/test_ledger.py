"""The attestation ledger: appends are chained, signed and serialized; the table refuses edits;
and an edit, a deletion or another key's signature made behind the triggers' back is found."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

from dynamic_assets.provenance import attest, ledger, merkle
from dynamic_assets.provenance import signing as keys
from dynamic_assets.provenance.canonical import canonical_sha256
from dynamic_assets.provenance.verify import verify_proof


def leaves(n: int, tag: str = "x") -> list[dict]:
    return [
        {"dataset": f"ds{tag}", "version": f"v{i}", "fingerprint": f"{i:064x}"} for i in range(n)
    ]


def append(db, key, batch) -> ledger.Entry:
    root = merkle.root(ledger.leaf_hashes(batch)).hex()
    with db.connect(autocommit=True) as conn, conn.transaction():
        return ledger.append(conn, root, batch, key)


@pytest.fixture
def key(tmp_path):
    return keys.load_signing_key(tmp_path)


@pytest.fixture
def three(db, key) -> list[ledger.Entry]:
    return [append(db, key, leaves(n, str(n))) for n in (1, 3, 2)]


def tamper(db, sql: str, params=()) -> None:
    """What someone with superuser rights can do: switch triggers off and edit the table."""
    with db.connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql, params)


def test_entries_chain_from_genesis_and_read_back_identical(db, three):
    with db.connect() as conn:
        stored = ledger.entries(conn)
    assert stored == three
    assert [e.seq for e in stored] == [1, 2, 3]
    assert stored[0].prev_hash == ledger.GENESIS
    assert stored[1].prev_hash == stored[0].entry_hash
    assert stored[1].entry_hash == canonical_sha256(stored[1].body())
    assert ledger.chain_problems(stored) == []


def test_the_table_refuses_changes_and_deletes(db, three):
    with db.connect(autocommit=True) as conn:
        for sql in (
            "UPDATE attestations SET merkle_root = 'x' WHERE seq = 2",
            "DELETE FROM attestations WHERE seq = 3",
            "TRUNCATE attestations CASCADE",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
        ledger.record_anchor(conn, 2, {"chain": "ton", "tx_hash": "ab"})
        with pytest.raises(psycopg.errors.RaiseException, match="already anchored"):
            conn.execute("UPDATE attestations SET anchor = '{}' WHERE seq = 2")
        with pytest.raises(ledger.LedgerError, match="already anchored"):
            ledger.record_anchor(conn, 2, {"chain": "ton"})
        assert len(ledger.entries(conn)) == 3


def test_an_edited_entry_is_found(db, three):
    tamper(
        db,
        "UPDATE attestations SET leaves = %s WHERE seq = 2",
        (Jsonb(leaves(3, "forged")),),
    )
    with db.connect() as conn:
        problems = ledger.chain_problems(ledger.entries(conn))
    assert any(
        p.startswith("entry 2: its contents hash to") and "edited after it was written" in p
        for p in problems
    ), problems


def test_a_deleted_entry_is_found(db, three):
    tamper(db, "DELETE FROM attestations WHERE seq = 2")
    with db.connect() as conn:
        problems = ledger.chain_problems(ledger.entries(conn))
    assert problems[0] == "entry 2 missing: the ledger jumps from 1 to 3"
    assert "entry 3: prev_hash" in problems[1] and "changed or removed" in problems[1]


def test_an_entry_signed_by_another_key_is_found(db, three, tmp_path):
    other = keys.load_signing_key(tmp_path / "other")
    e = three[1]
    tamper(
        db,
        "UPDATE attestations SET signature = %s WHERE seq = 2",
        (other.sign(bytes.fromhex(e.entry_hash)).hex(),),
    )
    with db.connect() as conn:
        problems = ledger.chain_problems(ledger.entries(conn))
    assert problems == [
        f"entry 2: the signature does not verify with the entry's key {e.public_key[:16]}…: "
        "signed by another key, or changed after signing"
    ]


def test_concurrent_appends_stay_contiguous(db, key):
    errors = []

    def work(i: int) -> None:
        try:
            for j in range(3):
                append(db, key, leaves(2, f"{i}-{j}"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    with db.connect() as conn:
        chain = ledger.entries(conn)
    assert [e.seq for e in chain] == list(range(1, 13))
    assert ledger.chain_problems(chain) == []


def _register(db, name: str, version: str) -> None:
    record = {"spec": "dynamic-assets/fingerprint/v1", "dataset": name, "version": version,
              "files": [], "rows": {"count": 0, "content_digest": "0" * 64}, "schema": {}}  # fmt: skip
    fp = canonical_sha256(record)
    with db.connect() as conn:
        conn.execute(
            """INSERT INTO datasets (name, version, status, fingerprint, fingerprint_record)
               VALUES (%s, %s, 'curated', %s, %s)""",
            (name, version, fp, Jsonb(record)),
        )


def test_pending_fingerprints_are_batched_into_one_entry_with_a_proof_each(db, key):
    for i in range(5):
        _register(db, "a", f"v{i}")
    with db.connect(autocommit=True) as conn:
        batch = attest.attest_pending(conn, key)
        assert attest.attest_pending(conn, key) is None  # nothing pending any more
    assert batch.entry.seq == 1 and len(batch.entry.leaves) == 5
    for i, doc in enumerate(batch.proofs):
        assert doc["merkle"]["leaf_index"] == i and doc["merkle"]["tree_size"] == 5
        report = verify_proof(doc, pinned_key=key.public_key_hex)
        assert report.ok, report.to_dict()
        assert [s.status for s in report.steps if s.name in ("merkle", "entry", "statement")] == [
            "pass"
        ] * 3

    _register(db, "b", "v1")
    with db.connect(autocommit=True) as conn:
        second = attest.attest_pending(conn, key)
        assert attest.proof_of(conn, "b", "v1")["ledger_entry"]["seq"] == 2
        assert ledger.chain_problems(ledger.entries(conn)) == []
    assert second.entry.prev_hash == batch.entry.entry_hash and len(second.proofs) == 1
