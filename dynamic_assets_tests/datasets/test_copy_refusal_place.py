"""A value Postgres refuses while a JSON Lines file is copied in is named at its own line,
whatever blank lines and long lines come before it: the server counts the tuples of the COPY,
which are not the file's lines, and which, with a long record among short ones, come in the
file's order only if the stream keeps them so."""

from __future__ import annotations

import pytest

from dynamic_assets.datasets.staging import load_version
from dynamic_assets.formats.errors import LoadError
from dynamic_assets_tests.datasets.test_staging import DOCS
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import source_file

# A number jsonb cannot hold: Python's json reads it (as infinity), Postgres refuses it.
REFUSED = '{"doc_id": 7, "body": "%s", "n": 1e1000000}'
GOOD = '{"doc_id": %d, "body": "%s"}'


def refusal(db, path) -> str:
    with db.connect(autocommit=True) as conn, pytest.raises(LoadError) as caught:
        load_version(conn, DOCS, "v1", [source_file(path, DOCS)])
    return str(caught.value)


@pytest.mark.parametrize("long_before", [False, True], ids=["short-before", "long-before"])
@pytest.mark.parametrize("long_refused", [False, True], ids=["short-refused", "long-refused"])
def test_a_refused_json_lines_value_is_named_at_its_line(db, tmp_path, long_before, long_refused):
    body = "x" * (2_000_000 if long_before else 10)
    lines = [
        GOOD % (1, "a"),
        "",  # blank lines are skipped: the tuples no longer count the lines
        GOOD % (2, body),
        "   ",
        GOOD % (3, "c"),
        REFUSED % ("y" * (1_500_000 if long_refused else 5)),
        GOOD % (8, "after"),
    ]
    path = write_file(tmp_path, "a.jsonl", "\n".join(lines) + "\n")

    message = refusal(db, path)

    assert message.startswith("datasets/docs/v1/a.jsonl: line 6: value rejected by Postgres"), (
        message
    )
    assert "value overflows numeric format" in message
