"""A value read from a sample file, proposed by `dynamic-assets declare` into an expectation's
`value_set`, is data: validating a later version with an unexpected value compares against it and
names the file at fault, and never runs it as SQL."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.datasets import pipeline
from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.drive import LocalDrive

ATTACK = "Q')) AND (SELECT lo_import($$/etc/hostname$$)) > 0 -- \""
CATEGORIES = ["bond", "equity", ATTACK]
VERSION = "2024-06-01"


def write_csv(path: Path, rows: list[tuple[int, str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["trade_id", "category", "amount"])
        out.writerows(rows)


def large_objects(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]


def test_a_declared_value_set_from_a_hostile_sample_is_compared_never_executed(tmp_path, db):
    sample = tmp_path / "samples" / "trades.csv"
    write_csv(sample, [(i, CATEGORIES[i % 3], 10.0 + i) for i in range(60)])
    config = tmp_path / "decls.yaml"
    config.write_text(DEMO_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    declared = CliRunner().invoke(
        main,
        ["declare", "trades", "--from", str(sample.parent), "--config", str(config)],
        env={"DYNAMIC_ASSETS_HOME": str(tmp_path / "h")},
    )
    assert declared.exit_code == 0, declared.output
    decls = load_declarations(config)
    ds = decls.dataset("trades")
    in_set = [e for e in ds.expectations if e.type == "expect_column_values_to_be_in_set"]
    assert [(e.kwargs["column"], e.kwargs["value_set"], e.severity) for e in in_set] == [
        ("category", sorted(CATEGORIES), "warn")
    ]
    # A value set is proposed as a warning; the team makes it blocking.
    in_set[0].severity = "error"

    # A later version: one file as declared, one with a category the declaration does not know.
    root = tmp_path / "drive"
    folder = root / "datasets" / "trades" / VERSION
    write_csv(folder / "good.csv", [(i, CATEGORIES[i % 3], 1.0) for i in range(30)])
    write_csv(
        folder / "bad.csv",
        [(100 + i, "swap" if i == 7 else CATEGORIES[i % 3], 1.0) for i in range(30)],
    )
    drive = LocalDrive(root)
    assert large_objects(db.uri) == 0
    staged = pipeline.stage(db, drive, decls, ds, VERSION)
    checked = pipeline.validate(db, ds, VERSION, staged)

    assert large_objects(db.uri) == 0  # the value never ran as SQL
    outcome = next(
        o for o in checked.expectations if o.expectation.type == "expect_column_values_to_be_in_set"
    )
    assert not outcome.success and outcome.error is None
    assert outcome.unexpected_count == 1
    bad = f"datasets/trades/{VERSION}/bad.csv"
    assert set(checked.quarantined) == {bad}
    # The file's own reason: its count of unexpected values and its first one, where it is.
    assert checked.quarantined[bad] == outcome.message_in_file(bad)
    assert "1 unexpected value(s) in this file" in checked.quarantined[bad]
    assert f"first: {bad} row 8: 'swap'" in checked.quarantined[bad]
    with psycopg.connect(db.uri) as conn:
        statuses = dict(
            conn.execute(
                "SELECT path, status FROM public.onedrive_ingest WHERE dataset = 'trades'"
            ).fetchall()
        )
    assert statuses == {bad: "quarantined", f"datasets/trades/{VERSION}/good.csv": "staged"}
