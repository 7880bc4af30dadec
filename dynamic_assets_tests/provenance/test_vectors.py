"""The fixed test vectors of docs/fingerprint-vectors.json (referenced by docs/fingerprint.md):
each input gives the stated canonical text and digests with the code, and again independently
with hashlib and the `rfc8785` package, so an auditor can rely on the document alone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import rfc8785
from psycopg import sql

from dynamic_assets.provenance import fingerprint as fpm
from dynamic_assets.provenance import ledger, merkle
from dynamic_assets.provenance.canonical import CanonicalError, canonical_json

DOCS = Path(__file__).resolve().parents[2] / "docs"
VECTORS = json.loads((DOCS / "fingerprint-vectors.json").read_text(encoding="utf-8"))
PGTYPE = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamptz",
    "json": "jsonb",
    "vector(3)": "vector(3)",
}


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_the_spec_names_its_vectors():
    assert "fingerprint-vectors.json" in (DOCS / "fingerprint.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", VECTORS["canonical_json"], ids=lambda c: c["sha256"][:8])
def test_canonical_json_is_rfc_8785(case):
    want = case["canonical"].encode("utf-8")
    assert canonical_json(case["value"]) == want
    assert rfc8785.dumps(case["value"]) == want
    assert hashlib.sha256(want).hexdigest() == case["sha256"]


def test_what_has_no_canonical_form_is_refused():
    for value in (0.5, 2**53, -(2**53), {1: "x"}, "\ud800"):
        with pytest.raises(CanonicalError):
            canonical_json(value)
    assert canonical_json(2**53 - 1) == rfc8785.dumps(2**53 - 1)


def test_values_rows_and_content_digest(db):
    rows = VECTORS["rows"]
    with db.connect() as conn, conn.transaction():
        conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        for v in VECTORS["values"]:
            q = sql.SQL("SELECT {c} FROM (SELECT %s::{t} AS v) x").format(
                c=fpm.canonical_value_sql("v", v["type"]), t=sql.SQL(PGTYPE[v["type"]])
            )
            assert conn.execute(q, (v["input"],)).fetchone()[0] == v["canonical"], v
    with db.connect() as conn:
        conn.execute(
            "CREATE TABLE ai_curated.vec (dataset_version text, s text, f float8, t timestamptz,"
            " j jsonb) PARTITION BY LIST (dataset_version)"
        )
        conn.execute(
            "CREATE TABLE ai_curated.vec_1 PARTITION OF ai_curated.vec FOR VALUES IN ('1')"
        )
        for r in rows["rows"]:
            conn.execute(
                "INSERT INTO ai_curated.vec VALUES ('1', %s, %s::float8, %s::timestamptz, %s::jsonb)",
                r["input"],
            )
        got = fpm.content_digest(conn, "vec", "1", rows["columns"])
    assert (got.rows, got.digest) == (rows["count"], rows["content_digest"])

    # The same, from the document's rules alone.
    hashes = []
    for r in rows["rows"]:
        text = "".join("N" if c is None else f"V{len(c.encode())}:{c}" for c in r["canonical"])
        assert text == r["row_text"]
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == r["row_hash"]
        hashes.append(sha(text.encode("utf-8")))
    groups: dict[int, list[bytes]] = {}
    for h in hashes:
        groups.setdefault(h[0], []).append(h)
    outer = b"".join(bytes([b]) + sha(b"".join(sorted(groups[b]))) for b in sorted(groups))
    assert hashlib.sha256(outer).hexdigest() == rows["content_digest"]


def test_the_fingerprint_record():
    v = VECTORS["fingerprint"]
    record, want = v["record"], v["canonical"].encode("utf-8")
    paths = [f["path"] for f in record["files"]]
    assert paths == sorted(paths, key=lambda p: p.encode("utf-8"))  # byte order: "B" < "b" < "é"
    rebuilt = fpm.build_record(
        dataset=record["dataset"],
        version=record["version"],
        schema=record["schema"],
        files=list(reversed(record["files"])),
        rows=record["rows"]["count"],
        digest=record["rows"]["content_digest"],
    )
    assert canonical_json(rebuilt) == rfc8785.dumps(record) == want
    assert fpm.fingerprint_of(record) == hashlib.sha256(want).hexdigest() == v["fingerprint"]
    assert record["rows"]["content_digest"] == VECTORS["rows"]["content_digest"]


def test_ledger_leaves_entry_and_head():
    v = VECTORS["ledger"]
    leaf_hashes = []
    for leaf in v["leaves"]:
        data = leaf["leaf_data"].encode("utf-8")
        assert ledger.leaf_data(leaf["leaf"]) == rfc8785.dumps(leaf["leaf"]) == data
        assert hashlib.sha256(b"\x00" + data).hexdigest() == leaf["leaf_hash"]
        leaf_hashes.append(bytes.fromhex(leaf["leaf_hash"]))
    l0, l1, l2 = leaf_hashes  # RFC 6962: MTH of 3 = node(node(l0, l1), l2)
    root = sha(b"\x01" + sha(b"\x01" + l0 + l1) + l2).hex()
    assert root == merkle.root(leaf_hashes).hex() == v["merkle_root"]

    body = v["entry_body"]
    assert body["merkle_root"] == root and body["prev_hash"] == "0" * 64
    assert rfc8785.dumps(body) == v["entry_canonical"].encode("utf-8")
    assert hashlib.sha256(rfc8785.dumps(body)).hexdigest() == v["entry_hash"]
    entry = ledger.Entry(
        **{k: body[k] for k in ("seq", "prev_hash", "merkle_root", "leaves", "created_at")},
        public_key=body["public_key"],
        entry_hash=v["entry_hash"],
        signature="",
    )
    assert entry.body() == body

    head = VECTORS["head"]["body"]
    assert head["head_hash"] == v["entry_hash"] and head["tree_size"] == 1
    assert head["tree_root"] == sha(b"\x00" + bytes.fromhex(v["entry_hash"])).hex()
    assert rfc8785.dumps(head) == VECTORS["head"]["canonical"].encode("utf-8")
    assert ledger.Head.from_dict(head | {"signature": ""}).body() == head
