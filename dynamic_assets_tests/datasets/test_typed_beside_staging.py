"""A CSV version's typed table is built while it stages, on a second connection, from the same
batches: it holds exactly what the build from the text staging (`INSERT ... SELECT` of the
casts) holds, value for value, and any value the typed stream cannot vouch for sends the version
down the old path, which names file, row and column."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from dynamic_assets.datasets.curated import build_version, discard_build
from dynamic_assets.datasets.errors import PromotionError
from dynamic_assets.datasets.staging import load_version
from dynamic_assets.datasets.typed_build import TypedBuild, typed_build_possible
from dynamic_assets.db.tables import CURATED_SCHEMA, ident
from dynamic_assets.declarations.model import Dataset
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import recorded_source

VERSION = "2024-06-01"
COLUMNS = ["id", "name", "qty", "price", "ratio", "day", "ts", "flag", "doc"]
# Valid values in every written form the declaration takes, padded and blank ones, strings that
# CSV and COPY treat specially (quotes, commas, newlines, a lone `\.`, backslashes, CR).
CSV = (
    "id,name,qty,price,ratio,day,ts,flag,doc\n"
    '1,plain,  7 ,1.5,NaN,2024-02-29,2024-06-01T10:00,yes,"{""a"": 1}"\n'
    '2,,-3,.5,inf,0001-01-01,2024-06-01 10:00:00.123456+05,on,"[1, 2]"\n'
    '3,"",0,1.,-Infinity,9999-12-31,2024-06-01T23:59:59Z,t,\n'
    '4,"Zürich, ""quoted""\nline2 – 東京",,1e-5,2.5E+3,2024-01-01,2024-06-01T10:00-0330,1,null\n'
    '5,\\.,12,-0.0,0,,2024-06-01 00:00,FALSE,"""s"""\n'
    '6,"back\\slash\r\ncr",8, 2 ,1,2024-03-01,,off,{}\n'
    "7, spaced ,9,3,4,2024-03-02,2024-06-01T10:00:30,N,1.5\n"
)


def dataset(**extra) -> Dataset:
    types = {
        "id": "integer",
        "qty": "integer",
        "price": "float",
        "ratio": "float",
        "day": "date",
        "ts": "timestamp",
        "flag": "boolean",
        "doc": "json",
    }
    return Dataset.model_validate(
        {
            "name": "typed",
            "columns": [
                {"name": c, "type": types.get(c, "string"), **extra.get(c, {})} for c in COLUMNS
            ],
            "primary_key": ["id"],
            "retention_days": 30,
        }
    )


def stage(uri: str, conn: psycopg.Connection, tmp_path, ds: Dataset, text: str) -> TypedBuild:
    """Stage `text` as the version's one file, building its typed table beside the staging;
    the build kept (or None) is `typed.built`."""
    local = write_file(tmp_path, "rows.csv", text)
    typed = TypedBuild(uri, ds, VERSION)
    try:
        source = recorded_source(conn, ds, VERSION, local)
        loads = load_version(conn, ds, VERSION, [source], typed=typed)
        typed.built = typed.commit([f.file_id for f in loads])  # type: ignore[attr-defined]
    finally:
        typed.close()
    return typed


KEPT = ["dataset_version", *COLUMNS, "_source_file_id", "_source_row", "_schema_version"]


def rows(conn: psycopg.Connection, table: str) -> list[tuple]:
    """Every column but `_curated_at` (the time of each build), ordered by id."""
    return conn.execute(
        sql.SQL("SELECT {}, _retain_until FROM {} ORDER BY id").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in KEPT), ident(CURATED_SCHEMA, table)
        )
    ).fetchall()


def differ(conn: psycopg.Connection, a: str, b: str) -> int:
    """Rows of either table the other does not hold, compared by Postgres (NaN = NaN)."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in [*KEPT, "_retain_until"])
    ta, tb = ident(CURATED_SCHEMA, a), ident(CURATED_SCHEMA, b)
    return conn.execute(
        sql.SQL(
            "SELECT count(*) FROM ((SELECT {c} FROM {a} EXCEPT ALL SELECT {c} FROM {b}) "
            "UNION ALL (SELECT {c} FROM {b} EXCEPT ALL SELECT {c} FROM {a})) d"
        ).format(c=cols, a=ta, b=tb)
    ).fetchone()[0]


def test_the_typed_table_built_beside_staging_holds_what_the_build_from_staging_holds(tmp_path, db):
    ds = dataset(ratio={"allow_non_finite": True}, name={"nullable": True})
    assert typed_build_possible(ds)
    with psycopg.connect(db.uri, autocommit=True) as conn:
        typed = stage(db.uri, conn, tmp_path, ds, CSV)
        beside = typed.built  # type: ignore[attr-defined]
        assert typed.failed is None and beside is not None and beside.rows == 7
        typed_rows = rows(conn, beside.table)
        # The same staged rows, built by Postgres' casts of the text staging (the typed table
        # is unrecorded first, so that the build leaves it in place).
        conn.execute("DELETE FROM curated_builds WHERE table_name = %s", (beside.table,))
        cast = build_version(conn, ds, VERSION)
        assert len(rows(conn, cast.table)) == 7 and differ(conn, beside.table, cast.table) == 0
        got = {r[1]: r[2:10] for r in typed_rows}
    assert got[1][0] == "plain" and got[2][0] is None and got[3][0] == ""
    assert got[4][0] == 'Zürich, "quoted"\nline2 – 東京' and got[5][0] == "\\."
    assert got[6][0] == "back\\slash\r\ncr" and got[7][0] == " spaced "
    assert [got[i][1] for i in range(1, 8)] == [7, -3, 0, None, 12, 8, 9]
    assert str(got[2][5]) == "2024-06-01 05:00:00.123456+00:00"


@pytest.mark.parametrize(
    "row, why",
    [
        ("8,x,1,abc,1,2024-01-01,2024-06-01T10:00,t,1", "a value out of its written form"),
        ("8,x,1,1,1,2024-02-30,2024-06-01T10:00,t,1", "Postgres refuses the date"),
        ("8,x,99999999999999999999,1,1,2024-01-01,2024-06-01T10:00,t,1", "bigint range"),
        ("8,x,1,1,1,2024-01-01,2024-06-01T10:00,maybe,1", "not a boolean"),
        ("1,x,1,1,1,2024-01-01,2024-06-01T10:00,t,1", "a duplicate key"),
        ("8,x,1,NaN,1,2024-01-01,2024-06-01T10:00,t,1", "NaN where none is allowed"),
    ],
)
def test_a_value_the_typed_stream_cannot_vouch_for_leaves_the_build_to_staging(
    tmp_path, db, row, why
):
    ds = dataset(ratio={"allow_non_finite": True}, name={"nullable": True})
    with psycopg.connect(db.uri, autocommit=True) as conn:
        typed = stage(db.uri, conn, tmp_path, ds, CSV + row + "\n")
        assert typed.failed is not None and typed.built is None, why  # type: ignore[attr-defined]
        assert conn.execute(
            "SELECT count(*) FROM curated_builds WHERE dataset = 'typed'"
        ).fetchone() == (0,)
        # The build from staging refuses it and says where.
        with pytest.raises(PromotionError) as refused:
            build_version(conn, ds, VERSION)
        assert "rows.csv" in str(refused.value), why
        discard_build(conn, ds, VERSION)
