"""Fingerprints (spec v1): the content digest computed inside Postgres does not depend on row
order, changes with any single value, agrees with an independent Python implementation of
docs/fingerprint.md, and a version re-curated from identical files keeps its fingerprint."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from dynamic_assets.formats.hashing import sha256_stream
from dynamic_assets.provenance import fingerprint as fpm
from dynamic_assets_tests.support.staging import curate_version

COLUMNS = [
    {"name": "s", "type": "string", "nullable": True},
    {"name": "i", "type": "integer", "nullable": True},
    {"name": "f", "type": "float", "nullable": True},
    {"name": "b", "type": "boolean", "nullable": True},
    {"name": "d", "type": "date", "nullable": True},
    {"name": "t", "type": "timestamp", "nullable": True},
    {"name": "j", "type": "json", "nullable": True},
    {"name": "v", "type": "vector(3)", "nullable": True},
]
ROWS = [
    ("plain", 1, 0.1, True, "2024-06-01", "2024-06-01T12:00:00.123456Z", '{"b": 1, "a": [1.50, "x"]}', "[1,2,3]"),
    ("", 2, -0.0, False, "1999-12-31", "2000-01-01T00:00:00Z", '{"long key": null, "k": "東京"}', "[0.5,-1,1e-7]"),
    (None, None, None, None, None, None, None, None),
    ("Zürich, \"q\"\nline2 – 東京", -9007199254740993, 1e300, True, "2024-02-29", "1970-01-01T00:00:00.000001Z", "[]", "[0,0,0]"),
    ("V3:abc", 0, 0.0, None, "0001-01-01", "2024-06-01T23:59:59+02:00", '"text"', "[3,2,1]"),
]  # fmt: skip


def _make_table(conn, versions: dict[str, list[tuple]]) -> None:
    conn.execute(
        """CREATE TABLE ai_curated.synth (dataset_version text NOT NULL, s text, i bigint,
               f double precision, b boolean, d date, t timestamptz, j jsonb, v vector(3),
               _source_row bigint) PARTITION BY LIST (dataset_version)"""
    )
    for version, rows in versions.items():
        part = f"synth__{version}"
        conn.execute(
            f"CREATE TABLE ai_curated.{part} PARTITION OF ai_curated.synth FOR VALUES IN ('{version}')"
        )
        for n, r in enumerate(rows):
            conn.execute(
                "INSERT INTO ai_curated.synth VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (version, *r, n),
            )


def _reference_digest(rows: list[tuple]) -> str:
    """docs/fingerprint.md, implemented without Postgres."""

    def jsonb_text(value) -> str:
        # Postgres' jsonb text: keys ordered by (byte length, bytes), ", " and ": ", numbers as written.
        if isinstance(value, dict):
            keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
            return (
                "{"
                + ", ".join(
                    f"{json.dumps(k, ensure_ascii=False)}: {jsonb_text(value[k])}" for k in keys
                )
                + "}"
            )
        if isinstance(value, list):
            return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
        if isinstance(value, Decimal):
            return str(value)
        return json.dumps(value, ensure_ascii=False)

    def canon(col: dict, v) -> str | None:
        if v is None:
            return None
        kind = col["type"]
        if kind == "string":
            return v
        if kind == "integer":
            return str(int(v))
        if kind == "float":
            return struct.pack(">d", float(v)).hex()
        if kind == "boolean":
            return "true" if v else "false"
        if kind == "date":
            return date.fromisoformat(v).isoformat()
        if kind == "timestamp":
            ts = datetime.fromisoformat(v.replace("Z", "+00:00"))
            return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if kind == "json":
            return jsonb_text(json.loads(v, parse_float=Decimal))
        floats = json.loads(v)
        return (
            struct.pack(">HH", len(floats), 0) + b"".join(struct.pack(">f", x) for x in floats)
        ).hex()

    hashes = []
    for r in rows:
        text = ""
        for col, v in zip(COLUMNS, r, strict=True):
            t = canon(col, v)
            text += "N" if t is None else f"V{len(t.encode())}:{t}"
        hashes.append(hashlib.sha256(text.encode()).digest())
    groups: dict[int, list[bytes]] = {}
    for h in hashes:
        groups.setdefault(h[0], []).append(h)
    outer = b"".join(
        bytes([b]) + hashlib.sha256(b"".join(sorted(groups[b]))).digest() for b in sorted(groups)
    )
    return hashlib.sha256(outer).hexdigest()


def test_the_digest_is_order_independent_and_sees_every_value(db):
    changed = list(ROWS)
    changed[3] = (*ROWS[3][:2], 1.0000000000000002e300, *ROWS[3][3:])  # one ulp
    with db.connect() as conn:
        _make_table(
            conn,
            {
                "a": ROWS,
                "b": list(reversed(ROWS)),
                "c": changed,
                "d": [*ROWS, ROWS[0]],  # a duplicated row counts
                "e": [(None if r[0] == "" else r[0], *r[1:]) for r in ROWS],  # '' vs NULL
                "f": [(r[0], r[1], 0.0 if r[2] == 0.0 else r[2], *r[3:]) for r in ROWS],  # -0.0
            },
        )
        got = {v: fpm.content_digest(conn, "synth", v, COLUMNS) for v in "abcdef"}
    assert got["a"].rows == 5 and got["d"].rows == 6
    assert got["a"].digest == got["b"].digest
    digests = [got[v].digest for v in "acdef"]
    assert len(set(digests)) == 5, "every change must change the digest"
    assert got["a"].digest == _reference_digest(ROWS), "Postgres and the spec disagree"


def test_an_empty_version_and_missing_columns(db):
    with db.connect() as conn:
        _make_table(conn, {"empty": []})
        empty = fpm.content_digest(conn, "synth", "empty", COLUMNS)
        assert (empty.rows, empty.digest) == (0, fpm.EMPTY_SHA256)
        with pytest.raises(fpm.FingerprintError, match="no column"):
            fpm.content_digest(conn, "synth", "empty", [*COLUMNS, {"name": "zz", "type": "string"}])
        with pytest.raises(fpm.FingerprintError, match="does not exist"):
            fpm.content_digest(conn, "nothing", "v1", COLUMNS)


def test_a_demo_version_fingerprint_is_stable_and_registered(db, drive, decls):
    ds = decls.dataset("market")
    curate_version(db, drive, decls, "market", "2024-06-01")
    with db.connect() as conn:
        first = fpm.compute_fingerprint(conn, ds, "2024-06-01")
        fpm.store_fingerprint(conn, first)
    rec = first.record
    assert rec["spec"] == "dynamic-assets/fingerprint/v1"
    assert (rec["dataset"], rec["version"], rec["rows"]["count"]) == ("market", "2024-06-01", 560)
    assert [f["path"] for f in rec["files"]] == [
        "datasets/market/2024-06-01/nasdaq.csv",
        "datasets/market/2024-06-01/nyse.csv",
    ]
    for f in rec["files"]:
        data = (drive.root / f["path"]).read_bytes()
        assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["size_bytes"] == len(data)
    assert rec["schema"]["primary_key"] == ["date", "symbol"]
    assert first.fingerprint == hashlib.sha256(fpm.record_bytes(rec)).hexdigest()

    # Identical files, staged and curated again: the same fingerprint.
    curate_version(db, drive, decls, "market", "2024-06-01")
    with db.connect() as conn:
        cleared = conn.execute(
            "SELECT fingerprint FROM datasets WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone()
        assert cleared == (None,)  # re-curated rows: the registry forgets the old fingerprint
        again = fpm.compute_fingerprint(conn, ds, "2024-06-01")
        fpm.store_fingerprint(conn, again)
        row = conn.execute(
            "SELECT fingerprint, content_digest, size_bytes, fingerprint_record FROM datasets "
            "WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone()
    assert again.fingerprint == first.fingerprint
    assert row == (first.fingerprint, first.content_digest, first.size_bytes, rec)


def test_versions_not_curated_are_refused(db, decls):
    with db.connect() as conn, pytest.raises(fpm.FingerprintError, match="not reached curated"):
        fpm.compute_fingerprint(conn, decls.dataset("market"), "2030-01-01")


def test_rehashing_matches_hashlib_for_files_and_streams(tmp_path):
    data = bytes(range(256)) * 20_000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    want = (hashlib.sha256(data).hexdigest(), len(data))
    with open(path, "rb") as f:
        assert sha256_stream(f) == want
    assert sha256_stream(io.BytesIO(data)) == want

    class Stream:  # read() only, like an HTTP body
        def __init__(self):
            self.buf = io.BytesIO(data)

        def read(self, n=-1):
            return self.buf.read(n)

    assert sha256_stream(Stream()) == want
