"""The reason recorded for each file of a version that fails its checks is that file's own:
where in it (line, column) and what is wrong there, never another file's failure; a file of the
version with nothing wrong in it says it was held back, and by which file."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from dynamic_assets.datasets import pipeline
from dynamic_assets.declarations.model import load_declarations
from dynamic_assets.drive import LocalDrive

VERSION = "2024-06-01"
DECLARATIONS = """
datasets:
  - name: trades
    formats: [csv]
    columns:
      - {name: trade_id, type: integer, nullable: false}
      - {name: venue, type: string, nullable: false}
      - {name: amount, type: float, nullable: false}
    primary_key: [trade_id]
    expectations:
      - {type: expect_column_values_to_be_in_set, column: venue, value_set: [XNYS, XNAS], severity: error}
"""
FOLDER = f"datasets/trades/{VERSION}"


def write(root: Path, name: str, rows: list[str]) -> None:
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("trade_id,venue,amount\n" + "".join(r + "\n" for r in rows))


def recorded(url: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return {
            path: (status, error or "")
            for path, status, error in conn.execute(
                "SELECT path, status, error FROM public.onedrive_ingest WHERE dataset = 'trades'"
            ).fetchall()
        }


@pytest.fixture
def version(tmp_path, db):
    """a.csv: an amount that is no number in row 2; b.csv: a venue out of the set in row 3
    and an amount that is no number in row 4; c.csv: nothing wrong."""
    config = tmp_path / "decls.yaml"
    config.write_text(DECLARATIONS, encoding="utf-8")
    root = tmp_path / "drive"
    write(root, "a.csv", ["1,XNYS,10.5", "2,XNYS,ten", "3,XNAS,11"])
    write(root, "b.csv", ["11,XNYS,1", "12,XNAS,2", "13,XLON,3", "14,XNAS,four"])
    write(root, "c.csv", ["21,XNYS,1", "22,XNAS,2"])
    decls = load_declarations(config)
    ds = decls.dataset("trades")
    staged = pipeline.stage(db, LocalDrive(root), decls, ds, VERSION)
    return pipeline.validate(db, ds, VERSION, staged)


def test_each_file_of_a_failed_version_records_its_own_reason(version, db):
    a, b, c = (f"{FOLDER}/{n}" for n in ("a.csv", "b.csv", "c.csv"))
    rows = recorded(db.uri)

    status, reason = rows[a]
    assert status == "quarantined"
    assert "column amount: 1 value(s) are not a valid float" in reason
    assert f"{a} row 2: 'ten'" in reason
    assert "b.csv" not in reason and "venue" not in reason and "2 value(s)" not in reason

    status, reason = rows[b]
    assert status == "quarantined"
    assert "column amount: 1 value(s) are not a valid float" in reason
    assert f"{b} row 4: 'four'" in reason
    assert "expect_column_values_to_be_in_set on venue failed" in reason
    assert "1 unexpected value(s) in this file" in reason and f"{b} row 3: 'XLON'" in reason
    assert "a.csv" not in reason and "'ten'" not in reason and "2 value(s)" not in reason

    status, reason = rows[c]
    assert status == "staged"  # its content is fine: it is taken when the version passes
    assert reason == f"held back: other files of version {VERSION} failed ({a}, {b})"

    # What the run shows per file is what was recorded.
    assert version.quarantined == {a: rows[a][1], b: rows[b][1]}
