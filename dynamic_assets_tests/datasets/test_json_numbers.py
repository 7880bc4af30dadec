"""A JSON Lines record's numbers reach staging as the file wrote them, whether its line is staged
as written or written again with its keys renamed: Postgres' jsonb keeps a number's digits and
scale (`1.50`), which a double would round (`12345678901234567890.123`) or cut (`1.5`)."""

from __future__ import annotations

import re

import pytest
from psycopg import sql

from dynamic_assets.datasets.staging import load_version
from dynamic_assets.db.tables import RAW_SCHEMA
from dynamic_assets.formats.errors import LoadError
from dynamic_assets_tests.datasets.test_jsonl_long_lines import RENAMED
from dynamic_assets_tests.datasets.test_staging import DOCS
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import source_file, version_rows

NUMBERS = {
    "scale": "1.50",
    "digits": "12345678901234567890.123",
    "big": "123456789012345678901234567890",
    "tiny": "1.5e-300",
    "exponent": "1E+5",
    "negative_zero": "-0.0",
}


@pytest.mark.parametrize(("ds", "key"), [(DOCS, "doc_id"), (RENAMED, "Doc Id")])
def test_json_lines_numbers_are_staged_as_written(db, tmp_path, ds, key):
    members = ", ".join(f'"{k}": {v}' for k, v in NUMBERS.items())
    path = write_file(tmp_path, "docs.jsonl", f'{{"{key}": "a", "body": [2.50, 7], {members}}}\n')
    with db.connect(autocommit=True) as conn:
        load_version(conn, ds, "v1", [source_file(path, ds)])
        staged = version_rows(conn, RAW_SCHEMA, ds, "v1", sql.SQL("_record::text"), "_row")[0][0]
        # What Postgres' own jsonb makes of the line as written, its key renamed.
        expected = conn.execute(
            "SELECT ((%s::jsonb - %s) || jsonb_build_object('doc_id', 'a'))::text",
            (path.read_text(), key),
        ).fetchone()[0]

    assert staged == expected
    assert '"scale": 1.50' in staged and '"digits": 12345678901234567890.123' in staged
    assert '"body": [2.50, 7]' in staged


# Numbers a double cannot hold as written, and ones the parser's float mode refused or turned
# into infinity: a JSON array's item is parsed, then written again, so each must survive both.
ARRAY_NUMBERS = {
    **NUMBERS,
    "huge": "1e400",
    "long_decimal": "0." + "1234567890" * 420,
    "long_integer": "9" * 4_000,
    "negative_big": "-98765432109876543210987654321",
}


@pytest.mark.parametrize(("ds", "key"), [(DOCS, "doc_id"), (RENAMED, "Doc Id")])
def test_json_array_numbers_are_staged_as_written(db, tmp_path, ds, key):
    members = ", ".join(f'"{k}": {v}' for k, v in ARRAY_NUMBERS.items())
    text = f'[{{"{key}": "a", "body": [2.50, 7], {members}}}, {{"{key}": "b", "n": 1.0}}]'
    path = write_file(tmp_path, "docs.json", text)
    with db.connect(autocommit=True) as conn:
        load_version(conn, ds, "v1", [source_file(path, ds)])
        staged = [
            r[0] for r in version_rows(conn, RAW_SCHEMA, ds, "v1", sql.SQL("_record::text"), "_row")
        ]
        # What Postgres' own jsonb makes of each item, its key renamed.
        expected = [
            r[0]
            for r in conn.execute(
                "SELECT ((e - %s) || jsonb_build_object('doc_id', e ->> %s))::text "
                "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS a(e, i) ORDER BY i",
                (key, key, text),
            ).fetchall()
        ]
    assert staged == expected
    assert '"scale": 1.50' in staged[0] and '"n": 1.0' in staged[1]


@pytest.mark.parametrize("pad", [0, 65_500])  # the run within one piece read, or across two
@pytest.mark.parametrize(
    "number", ["9" * 4_300, "-" + "1" * 10_000, "0." + "5" * 4_000 + "e" + "1" * 4_400]
)
def test_a_json_array_with_a_run_of_over_4300_digits_is_refused_not_crashed(
    db, tmp_path, number, pad
):
    """Python reads no integer of more digits (the parser's exact mode crashes on one): the file
    is refused with its name and the run's place, and the interpreter lives on."""
    text = f'[{{"doc_id": "a", "pad": "{"x" * pad}"}}, {{"doc_id": "b", "n": {number}}}]'
    path = write_file(tmp_path, "docs.json", text)
    with db.connect(autocommit=True) as conn, pytest.raises(LoadError) as raised:
        load_version(conn, DOCS, "v1", [source_file(path, DOCS)])
    at = re.search("[0-9]{4300}", text).start() + 1
    assert str(raised.value).startswith(
        f"datasets/docs/v1/docs.json: a run of 4,300 digits or more at byte {at:,}: "
    )


@pytest.mark.parametrize(
    ("number", "words"),
    [
        # Beyond a decimal's exponent: refused by the parser.
        ("1e9999999999999999999", "row 2: a number out of range after array item 1"),
        # A decimal's, but beyond Postgres' numeric: refused by Postgres, at its item.
        ("1e999999999999999999", "row 2: value rejected by Postgres"),
    ],
)
def test_a_json_array_number_out_of_range_is_refused_at_its_item(db, tmp_path, number, words):
    path = write_file(
        tmp_path, "docs.json", f'[{{"doc_id": "a"}}, {{"doc_id": "b", "n": {number}}}]'
    )
    with db.connect(autocommit=True) as conn, pytest.raises(LoadError) as raised:
        load_version(conn, DOCS, "v1", [source_file(path, DOCS)])
    assert str(raised.value).startswith(f"datasets/docs/v1/docs.json: {words}")
