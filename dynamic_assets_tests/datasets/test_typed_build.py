"""The typed table built from a staged CSV: the same rows and the same fingerprint for the same
file, whether the written forms were judged while the file was staged or by Postgres when the
table is built; and a version staged before its declaration changed is judged again."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import pytest
from psycopg import sql

from dynamic_assets.datasets.curated import build_version, promote_version
from dynamic_assets.datasets.errors import PromotionError
from dynamic_assets.db.tables import CURATED_SCHEMA
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.provenance.fingerprint import fingerprint_table
from dynamic_assets_tests.support.staging import stage_file, version_rows

MIXED = Dataset(
    name="mixed",
    formats=["csv"],
    columns=[
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "qty", "type": "integer"},
        {"name": "price", "type": "float", "allow_non_finite": True},
        {"name": "ok", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "timestamp"},
        {"name": "note", "type": "string"},
        {"name": "loose", "type": "integer", "coerce": True},
    ],
    primary_key=["id"],
)
MIXED_CSV = (
    "id,qty,price,ok,day,at,note,loose\n"
    '1,-42,1.5,true,2030-01-02,2030-01-02T03:04:05Z,"Zürich, ""quoted""\nline2 – 東京",0x1F\n'
    "2, 007 ,-1e3,f,0001-01-01,2030-01-02 03:04:05+02:00,plain,1_000\n"
    "3,,NaN,yes,9999-12-31,2030-01-02T03:04,,+5\n"
    '4,9223372036854775807,.5,0,2024-02-29,2030-01-02T03:04:05.123456-0530,"",\n'
    "5,0,-Infinity,,,,emoji 🚀,  12  \n"
)
# Computed with the build that judged every written form in Postgres (one regex pass over the
# staged text before the cast): the same file must keep giving these.
MIXED_DIGEST = "7fce8b4317ccc93e467384f36e3709f95d5e5859fd1dae77dc244ea7620d3cd5"
MIXED_FINGERPRINT = "b85b9a68071c1df0071b49b8a307e18a0405d39152094440e69ae64e44a9a9fe"


def _fingerprint(conn, ds: Dataset, table: str, file_id: int, path: str, data: bytes):
    files = [
        {
            "id": file_id,
            "path": path,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
        }
    ]
    return fingerprint_table(conn, ds, "v1", table, files)


def test_the_same_file_gives_the_same_rows_and_fingerprint(db, tmp_path):
    data = MIXED_CSV.encode()
    with db.connect(autocommit=True) as conn:
        file_id, path = stage_file(conn, MIXED, "v1", tmp_path, "mixed.csv", data)
        build = build_version(conn, MIXED, "v1")
        fp = _fingerprint(conn, MIXED, build.table, file_id, path, data)
        rows = conn.execute(
            sql.SQL(
                "SELECT id, qty, price, ok, day, at, note, loose FROM {} ORDER BY _source_row"
            ).format(sql.Identifier(CURATED_SCHEMA, build.table))
        ).fetchall()
    t = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rows == [
        (1, -42, 1.5, True, date(2030, 1, 2), t, 'Zürich, "quoted"\nline2 – 東京', 31),
        (2, 7, -1000.0, False, date(1, 1, 1), datetime(2030, 1, 2, 1, 4, 5, tzinfo=UTC), "plain",
         1000),
        (3, None, pytest.approx(float("nan"), nan_ok=True), True, date(9999, 12, 31),
         t.replace(second=0), None, 5),
        (4, 2**63 - 1, 0.5, False, date(2024, 2, 29),
         datetime(2030, 1, 2, 8, 34, 5, 123456, tzinfo=UTC), "", None),
        (5, 0, float("-inf"), None, None, None, "emoji 🚀", 12),
    ]  # fmt: skip
    assert (fp.rows, fp.content_digest, fp.fingerprint) == (5, MIXED_DIGEST, MIXED_FINGERPRINT)
