"""Schema drift is a change of the files' structure against the previous version: columns or keys
added or dropped, a Parquet column stored in another type, a column whose values moved to another
type as a whole. A bad value in a column is a bad value, reported by `rows_castable` with its
file and row, not a retyped column."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from dynamic_assets.datasets import pipeline
from dynamic_assets.declarations.model import Dataset, Declarations
from dynamic_assets.drive import LocalDrive
from dynamic_assets_tests.support.drive_files import write_file

ORDERS = {
    "name": "orders",
    "columns": [
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "qty", "type": "integer"},
        {"name": "ts", "type": "timestamp"},
    ],
}
HEADER = "id,qty,ts\n"
CLEAN = "".join(f"{i},{i * 3},2024-06-{i:02d} 10:00:00\n" for i in range(1, 9))


def run(db, root: Path, declared: dict, version: str, files: dict[str, str | bytes | pa.Table]):
    """The version's files written to the drive, staged and validated as the ingest job does."""
    folder = root / "datasets" / declared["name"] / version
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_file(folder, name, data)
    decls = Declarations.model_validate({"datasets": [declared]})
    ds: Dataset = decls.dataset(declared["name"])
    staged = pipeline.stage(db, LocalDrive(root), decls, ds, version)
    return pipeline.validate(db, ds, version, staged)


def test_one_bad_value_in_an_integer_column_is_a_bad_value_not_a_retyped_column(tmp_path, db):
    root = tmp_path / "drive"
    assert not run(db, root, ORDERS, "v1.0", {"a.csv": HEADER + CLEAN}).problems
    bad = CLEAN.replace("\n5,15,", "\n5,abc,")
    assert bad != CLEAN

    checked = run(db, root, ORDERS, "v2.0", {"a.csv": HEADER + bad})

    assert not checked.schema_change.changed
    assert checked.schema_change.message == "same columns and types as version v1.0"
    (problem,) = checked.problems
    assert problem.message.startswith("column qty: 1 value(s) are not a valid integer")
    assert "datasets/orders/v2.0/a.csv row 5: 'abc'" in problem.message
    later = run(db, root, ORDERS, "v3.0", {"a.csv": HEADER + CLEAN})
    assert later.schema_change.message == "same columns and types as version v2.0"


def test_a_bad_value_in_the_first_version_does_not_make_the_next_one_drift(tmp_path, db):
    root = tmp_path / "drive"
    run(db, root, ORDERS, "v1.0", {"a.csv": HEADER + CLEAN.replace("\n5,15,", "\n5,abc,")})

    checked = run(db, root, ORDERS, "v2.0", {"a.csv": HEADER + CLEAN})

    assert checked.schema_change.message == "same columns and types as version v1.0"


def test_an_infinite_timestamp_is_not_a_retyped_column(tmp_path, db):
    root = tmp_path / "drive"
    run(db, root, ORDERS, "v1.0", {"a.csv": HEADER + CLEAN})

    checked = run(db, root, ORDERS, "v2.0", {"a.csv": HEADER + "1,3,infinity\n"})

    assert checked.schema_change.message == "same columns and types as version v1.0"
    # The next version is compared with the type the column kept, not with the bad value's.
    later = run(db, root, ORDERS, "v3.0", {"a.csv": HEADER + CLEAN})
    assert later.schema_change.message == "same columns and types as version v2.0"


def test_a_column_whose_every_value_moved_to_another_type_is_retyped(tmp_path, db):
    root = tmp_path / "drive"
    run(db, root, ORDERS, "v1.0", {"a.csv": HEADER + CLEAN})
    decimals = "".join(f"{i},{i * 3}.5,2024-06-{i:02d} 10:00:00\n" for i in range(1, 9))

    checked = run(db, root, ORDERS, "v2.0", {"a.csv": HEADER + decimals})

    assert (
        checked.schema_change.message
        == "compared with version v1.0: retyped qty (integer -> float)"
    )
    assert checked.problems[0].message.startswith("column qty: 8 value(s) are not a valid integer")


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_keys_added_to_and_dropped_from_json_records_are_drift(tmp_path, db):
    declared = {
        "name": "events",
        "formats": ["jsonl"],
        "columns": [{"name": "id", "type": "integer"}, {"name": "note", "type": "string"}],
    }
    root = tmp_path / "drive"
    run(db, root, declared, "v1.0", {"a.jsonl": jsonl([{"id": i, "note": "x"} for i in range(5)])})

    checked = run(
        db,
        root,
        declared,
        "v2.0",
        {"a.jsonl": jsonl([{"id": i, "color": "red"} for i in range(5)])},
    )

    assert checked.schema_change.message == (
        "compared with version v1.0: added color; dropped note"
    )


def test_a_json_key_with_one_value_of_another_type_is_not_retyped(tmp_path, db):
    declared = {
        "name": "events",
        "formats": ["jsonl"],
        "columns": [{"name": "id", "type": "integer"}, {"name": "qty", "type": "integer"}],
    }
    root = tmp_path / "drive"
    run(db, root, declared, "v1.0", {"a.jsonl": jsonl([{"id": i, "qty": i} for i in range(5)])})
    records = [{"id": i, "qty": "abc" if i == 2 else i} for i in range(5)]

    checked = run(db, root, declared, "v2.0", {"a.jsonl": jsonl(records)})

    assert checked.schema_change.message == "same columns and types as version v1.0"
    (problem,) = checked.problems
    # JSON values are shown as JSON text: the string "abc", quoted.
    assert "datasets/events/v2.0/a.jsonl row 3" in problem.message
    assert """'"abc"'""" in problem.message


def test_a_column_added_to_the_declaration_and_the_csv_header_is_drift(tmp_path, db):
    root = tmp_path / "drive"
    run(db, root, ORDERS, "v1.0", {"a.csv": HEADER + CLEAN})
    wider = {**ORDERS, "columns": [*ORDERS["columns"], {"name": "note", "type": "string"}]}
    rows = "".join(line + ",hello\n" for line in CLEAN.splitlines())

    checked = run(db, root, wider, "v2.0", {"a.csv": "id,qty,ts,note\n" + rows})

    assert checked.schema_change.message == "compared with version v1.0: added note"


def test_a_parquet_column_stored_in_another_type_is_retyped(tmp_path, db):
    declared = {
        "name": "prices",
        "formats": ["parquet"],
        "columns": [{"name": "id", "type": "integer"}, {"name": "price", "type": "float"}],
    }
    root = tmp_path / "drive"
    ints = pa.table({"id": pa.array([1, 2], pa.int64()), "price": pa.array([3, 4], pa.int64())})
    same = pa.table({"id": pa.array([3, 4], pa.int64()), "price": pa.array([5, 6], pa.int64())})
    floats = pa.table({"id": pa.array([5], pa.int64()), "price": pa.array([7.5], pa.float64())})
    run(db, root, declared, "v1.0", {"a.parquet": ints})

    assert run(db, root, declared, "v2.0", {"a.parquet": same}).schema_change.message == (
        "same columns and types as version v1.0"
    )
    checked = run(db, root, declared, "v3.0", {"a.parquet": floats})

    assert checked.schema_change.message == (
        "compared with version v2.0: retyped price (int64 -> double)"
    )
