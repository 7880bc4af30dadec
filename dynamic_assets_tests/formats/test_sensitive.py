"""The readers refuse a bad file of a sensitive dataset naming the file, the line or row and the
reason, and nothing read from the file: not a value a parser quoted, not a header name, not a
byte. The same file of a dataset that is not sensitive gets the parser's words as well."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamic_assets.declarations.model import WITHHELD, Column
from dynamic_assets.formats.csv import CsvFile
from dynamic_assets.formats.errors import LoadError
from dynamic_assets.formats.json import json_records
from dynamic_assets.formats.parquet import open_parquet, parquet_batches

MARKER = "SSN-444-55-6666"
NAMES = ["id", "ssn", "amount"]
COLUMNS = [
    Column(name="id", type="integer"),
    Column(name="ssn"),
    Column(name="amount", type="integer"),
]


def refusal(read: Callable[[bool], object], sensitive: bool) -> LoadError:
    with pytest.raises(LoadError) as info:
        read(sensitive)
    return info.value


def csv_reader(data: bytes) -> Callable[[bool], object]:
    def read(sensitive: bool) -> None:
        reader = CsvFile("d/v1/people.csv", lambda: io.BytesIO(data), NAMES, sensitive=sensitive)
        for _ in reader.batches():
            pass
        reader.finish()

    return read


def json_reader(data: bytes, fmt: str) -> Callable[[bool], object]:
    def read(sensitive: bool) -> None:
        for _ in json_records(f"d/v1/people.{fmt}", io.BytesIO(data), fmt, sensitive=sensitive):
            pass

    return read


def parquet_reader(table: pa.Table, tmp: Path) -> Callable[[bool], object]:
    path = tmp / "people.parquet"
    pq.write_table(table, path, row_group_size=3)

    def read(sensitive: bool) -> None:
        pfile = open_parquet("d/v1/people.parquet", path, sensitive=sensitive)
        for _ in parquet_batches(
            "d/v1/people.parquet", pfile, COLUMNS, batch_size=3, sensitive=sensitive
        ):
            pass

    return read


def truncated_parquet(tmp: Path) -> Callable[[bool], object]:
    path = tmp / "people.parquet"
    pq.write_table(pa.table({"id": [1, 2], "ssn": [MARKER, MARKER], "amount": [1, 2]}), path)
    path.write_bytes(path.read_bytes()[:-20])

    def read(sensitive: bool) -> None:
        open_parquet("d/v1/people.parquet", path, sensitive=sensitive)

    return read


CASES = [
    # (id, reader, the message for a sensitive dataset, what the parser adds otherwise)
    (
        "json_trailing_garbage",
        lambda tmp: json_reader(
            f'[{{"id": 1, "ssn": "1", "amount": 5}}]\n{MARKER}\n'.encode(), "json"
        ),
        f"d/v1/people.json: row 2: not valid JSON after array item 1 {WITHHELD}",
        "(parse error: trailing garbage)",
    ),
    (
        "json_garbage_inside_the_array",
        lambda tmp: json_reader(f'[{{"id": 1}}, {{"id": 2}}, {MARKER}]'.encode(), "json"),
        f"d/v1/people.json: row 3: not valid JSON after array item 2 {WITHHELD}",
        "(lexical error: invalid char in json text.)",
    ),
    (
        "jsonl_broken_line",
        lambda tmp: json_reader(f'{{"id": 1}}\n{{"ssn": "{MARKER}", \n'.encode(), "jsonl"),
        f"d/v1/people.jsonl: line 2: not valid JSON at column 27 {WITHHELD}",
        "(Expecting property name enclosed in double quotes: line 1 column 27 (char 26))",
    ),
    (
        "jsonl_latin1",
        lambda tmp: json_reader('{"id": 1}\n{"ssn": "Zoë"}\n'.encode("latin-1"), "jsonl"),
        f"d/v1/people.jsonl: line 2: not valid UTF-8 at column 12 {WITHHELD}",
        "(byte 0xeb)",
    ),
    (
        "csv_without_header",
        lambda tmp: csv_reader(f"1,{MARKER},5\n".encode()),
        "d/v1/people.csv: line 1: the header does not match the declaration: missing declared "
        f"column(s) id, ssn, amount; undeclared column(s) {WITHHELD}",
        None,
    ),
    (
        "csv_header_naming_a_column_twice",
        lambda tmp: csv_reader(f"{MARKER},{MARKER},amount\n1,2,3\n".encode()),
        f"d/v1/people.csv: line 1: the header names column(s) twice: {WITHHELD}",
        None,
    ),
    (
        "csv_latin1",
        lambda tmp: csv_reader("id,ssn,amount\n1,Zoë,5\n".encode("latin-1")),
        f"d/v1/people.csv: line 2: not valid UTF-8 at column 5; save the file as UTF-8 {WITHHELD}",
        "(byte 0xeb)",
    ),
    (
        "parquet_value_not_of_the_declared_type",
        lambda tmp: parquet_reader(
            pa.table(
                {"id": [1, 2, 3, 4, 5], "ssn": ["a"] * 5, "amount": ["1", "2", "3", "4", MARKER]}
            ),
            tmp,
        ),
        f"d/v1/people.parquet: row 5: column amount: cannot convert string to the declared type {WITHHELD}",
        f"Failed to parse string: '{MARKER}'",
    ),
    (
        "parquet_truncated",
        lambda tmp: truncated_parquet(tmp),
        f"d/v1/people.parquet: not a readable Parquet file, truncated or corrupt {WITHHELD}",
        "Parquet",
    ),
]


@pytest.mark.parametrize(
    ("make", "withheld", "shown"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_refusal_names_file_place_and_reason_but_no_value_of_a_sensitive_file(
    tmp_path, make, withheld, shown
):
    read = make(tmp_path)
    err = refusal(read, sensitive=True)
    assert err.message == withheld
    assert str(err) == withheld and err.args == (withheld,)
    assert MARKER not in repr(err)

    plain = refusal(read, sensitive=False)
    assert plain.path == err.path and (plain.line, plain.row) == (err.line, err.row)
    assert WITHHELD not in plain.message
    if shown is not None:
        assert shown in plain.message, plain.message


def test_the_detail_of_a_load_error_is_kept_apart_from_its_reason():
    shown = LoadError("f.json", "not valid JSON", line=3, detail=f"near '{MARKER}'\n  ^")
    assert shown.message == f"f.json: line 3: not valid JSON (near '{MARKER}' ^)"
    hidden = LoadError("f.json", "not valid JSON", line=3, detail=MARKER, sensitive=True)
    assert hidden.message == f"f.json: line 3: not valid JSON {WITHHELD}"
    assert hidden.reason == "not valid JSON" and hidden.detail is None  # not kept at all
    assert MARKER not in repr(vars(hidden))
