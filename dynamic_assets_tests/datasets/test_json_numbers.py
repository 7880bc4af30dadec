"""A JSON Lines record's numbers reach staging as the file wrote them, whether its line is staged
as written or written again with its keys renamed: Postgres' jsonb keeps a number's digits and
scale (`1.50`), which a double would round (`12345678901234567890.123`) or cut (`1.5`)."""

from __future__ import annotations

import pytest
from psycopg import sql

from dynamic_assets.datasets.staging import load_version
from dynamic_assets.db.tables import RAW_SCHEMA
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
