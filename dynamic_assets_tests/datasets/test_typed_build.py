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
from dynamic_assets.db.tables import CURATED_SCHEMA, partition_name
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.provenance.fingerprint import fingerprint_table
from dynamic_assets_tests.support.staging import stage_file

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


def _note(conn, ds: Dataset) -> str | None:
    return conn.execute(
        "SELECT obj_description(format('ai_raw.%%I', %s::text)::regclass, 'pg_class')",
        (partition_name(ds.name, "v1"),),
    ).fetchone()[0]


def test_staging_records_that_every_value_was_in_its_form_and_the_build_gives_the_same(
    db, tmp_path
):
    data = MIXED_CSV.encode()
    with db.connect(autocommit=True) as conn:
        file_id, path = stage_file(conn, MIXED, "v1", tmp_path, "mixed.csv", data)
        note = _note(conn, MIXED)
        build = build_version(conn, MIXED, "v1")
        fp = _fingerprint(conn, MIXED, build.table, file_id, path, data)
    assert note is not None and note.startswith("written forms judged at staging: ")
    assert (fp.content_digest, fp.fingerprint) == (MIXED_DIGEST, MIXED_FINGERPRINT)


def test_a_value_out_of_its_form_leaves_the_version_unjudged(db, tmp_path):
    text = MIXED_CSV.replace("2, 007 ,", "2,0x1F,")
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, MIXED, "v1", tmp_path, "mixed.csv", text)
        note = _note(conn, MIXED)
        with pytest.raises(PromotionError) as info:
            build_version(conn, MIXED, "v1")
    assert note is None
    assert f"column qty: 1 value(s) are not a valid integer (first: {path} row 2: '0x1F')" in str(
        info.value
    )


def test_a_version_staged_under_other_forms_is_judged_again_when_built(db, tmp_path):
    """A column staged as a string and declared an integer since: what staging judged does not
    stand for the new form."""
    as_text = MIXED.model_copy(
        update={
            "columns": [
                c.model_copy(update={"type": "string"}) if c.name == "qty" else c
                for c in MIXED.columns
            ]
        }
    )
    text = MIXED_CSV.replace("2, 007 ,", "2,0x1F,")
    with db.connect(autocommit=True) as conn:
        _, path = stage_file(conn, as_text, "v1", tmp_path, "mixed.csv", text)
        assert _note(conn, as_text) is not None  # every value staged was in its form then
        with pytest.raises(PromotionError) as info:
            promote_version(conn, MIXED, "v1")
        curated = conn.execute("SELECT count(*) FROM ai_curated.mixed").fetchone()
    assert f"column qty: 1 value(s) are not a valid integer (first: {path} row 2: '0x1F')" in str(
        info.value
    )
    assert curated == (0,)


TRICKY = [
    "5", "-5", "+5", " 5 ", "\t5", "5\n", "\n5", "5\r", "５", "٣", "1_000", "0x1F", "007", "-",
    "1.5", ".5", "5.", "-.5e-3", "1E+5", "1e", "1.2.3", "1.5\n", "NaN", "nan", "INF", "-Infinity",
    "+inf", "İnf", "ınf", "NaN\n", "infinity ", "2030-01-02", "2030-01-02\n", " 2030-01-02",
    "2030-1-02", "20300102", "2030-01-02T03:04", "2030-01-02 03:04:05.123456Z",
    "2030-01-02T03:04:05.1234567Z", "2030-01-02T24:00", "2030-01-02T03:60", "2030-01-02t03:04",
    "2030-01-02T03:04:05+0530", "2030-01-02T03:04:05+05:30", "2030-01-02T03:04:05+05:3",
    "2030-01-02T03:04:05z", "2030-01-02T03:04:05Z\n", "2030-01-02T03:04:05 Z", "",
]  # fmt: skip


@pytest.mark.parametrize("column", ["qty", "price", "day", "at"])
def test_the_client_reads_each_written_form_as_postgres_does(db, column):
    """`judge_forms` (RE2, in Arrow) against the build's pass (`bad_text_value`, Postgres'
    regular expressions), value by value: the same answer for ASCII text; beyond it the client
    may refuse more (`İnf` is `inf` to Postgres' `lower` in some collations: then Postgres
    judges it), never less."""
    import pyarrow as pa

    from dynamic_assets.datasets.staging import judge_forms
    from dynamic_assets.db.casts import bad_text_value, csv_forms

    col = MIXED.column(column)
    form = csv_forms(MIXED)[column]
    client = [not judge_forms(pa.array([v]), form, non_finite=col.type == "float") for v in TRICKY]
    with db.connect() as conn:
        server = [
            conn.execute(
                sql.SQL("SELECT coalesce({}, false) FROM (SELECT %s::text AS {}) s").format(
                    bad_text_value(MIXED, col, validate=False), sql.Identifier(column)
                ),
                (v,),
            ).fetchone()[0]
            for v in TRICKY
        ]
    ascii_ = [v.isascii() for v in TRICKY]
    assert {v: c for v, c, a in zip(TRICKY, client, ascii_, strict=True) if a} == {
        v: s for v, s, a in zip(TRICKY, server, ascii_, strict=True) if a
    }
    assert [v for v, c, s in zip(TRICKY, client, server, strict=True) if s and not c] == []
