"""Files of a dataset the declarations leave out: a dataset declared after its files reached the
drive is taken whole (every file in its fingerprint, so `verify --source` catches an edited
source), and a dataset left out of one run's config keeps its history (statuses, `verify`, and
nothing to run again once it is declared again)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main

TRADES = {
    "name": "trades",
    "description": "Fills, one CSV file per desk.",
    "formats": ["csv"],
    "columns": [
        {"name": "trade_id", "type": "integer", "nullable": False},
        {"name": "side", "type": "string", "nullable": False},
        {"name": "qty", "type": "integer", "nullable": False},
    ],
    "primary_key": ["trade_id"],
    "sensitivity": "internal",
}
OTHER = {
    "name": "other",
    "formats": ["csv"],
    "columns": [{"name": "k", "type": "integer", "nullable": False}],
    "primary_key": ["k"],
    "sensitivity": "internal",
}
CSV = "trade_id,side,qty\n1,buy,10\n2,sell,5\n3,buy,7\n"
CSV_B = "trade_id,side,qty\n4,sell,2\n"
SOURCE = "datasets/trades/v1.0/desk_a.csv"
SOURCE_B = "datasets/trades/v1.0/desk_b.csv"


def env(tmp_path: Path, db_url: str, config: Path) -> dict[str, str]:
    return {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(tmp_path / "drive"),
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": db_url,
        "ATTESTATION_PUBLIC_KEY": "",
        "TON_MNEMONIC": "",
        "TON_API_URL": "",
        "DAGSTER_HOME": "",
    }


def write_config(path: Path, *datasets: dict) -> Path:
    path.write_text(yaml.safe_dump({"datasets": list(datasets)}, sort_keys=False), "utf-8")
    return path


def cli(tmp_path: Path, db_url: str, config: Path, *args: str):
    return CliRunner().invoke(main, list(args), env=env(tmp_path, db_url, config))


def ingest_rows(db) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT path, etag, dataset, version, status, error FROM public.onedrive_ingest "
            "ORDER BY path, etag"
        ).fetchall()


def test_a_dataset_declared_after_its_files_arrived_is_fingerprinted_over_every_file(
    tmp_path, db_url, db
):
    source = tmp_path / "drive" / SOURCE
    source.parent.mkdir(parents=True)
    source.write_text(CSV, encoding="utf-8")
    config = write_config(tmp_path / "datasets.yaml", OTHER)

    before = cli(tmp_path, db_url, config, "run", "--no-train")
    assert before.exit_code == 1, before.output
    assert f"{SOURCE}: dataset 'trades' is not declared" in before.output
    with db.connect() as conn:
        row = conn.execute(
            "SELECT dataset, version, status FROM public.onedrive_ingest WHERE path = %s",
            (SOURCE,),
        ).fetchone()
    assert row == ("trades", "v1.0", "undeclared")

    declared = CliRunner().invoke(
        main,
        ["declare", "trades", "--from", str(source.parent), "--config", str(config)],
        env={"DYNAMIC_ASSETS_HOME": str(tmp_path / "home")},
    )
    assert declared.exit_code == 0, declared.output
    after = cli(tmp_path, db_url, config, "run", "--no-train")
    assert after.exit_code == 0, after.output
    assert any(
        "trades" in ln and "v1.0" in ln and "curated" in ln for ln in after.output.splitlines()
    )

    source.write_text(CSV.replace("2,sell,5", "2,sell,6"), encoding="utf-8")
    edited = cli(tmp_path, db_url, config, "verify", "trades", "v1.0", "--source")
    assert edited.exit_code == 1, edited.output
    assert f"FAILED at step source: {SOURCE}: its bytes now hash to" in edited.stderr

    with db.connect() as conn:
        record = conn.execute(
            "SELECT fingerprint_record FROM public.datasets WHERE name = 'trades' AND version = 'v1.0'"
        ).fetchone()[0]
        row = conn.execute(
            "SELECT dataset, version, status, file_format, error FROM public.onedrive_ingest "
            "WHERE path = %s",
            (SOURCE,),
        ).fetchone()
    assert record["files"] == [
        {
            "path": SOURCE,
            "sha256": hashlib.sha256(CSV.encode()).hexdigest(),
            "size_bytes": len(CSV.encode()),
        }
    ]
    assert row == ("trades", "v1.0", "curated", "csv", None)


def test_a_config_that_leaves_a_dataset_out_does_not_rewrite_its_history(tmp_path, db_url, db):
    source = tmp_path / "drive" / SOURCE
    source.parent.mkdir(parents=True)
    source.write_text(CSV, encoding="utf-8")
    (tmp_path / "drive" / SOURCE_B).write_text(CSV_B, encoding="utf-8")
    (source.parent / "README.md").write_text("Fills of two desks.\n", encoding="utf-8")
    full = write_config(tmp_path / "datasets.yaml", OTHER, TRADES)
    without = write_config(tmp_path / "without-trades.yaml", OTHER)

    first = cli(tmp_path, db_url, full, "run", "--no-train")
    assert first.exit_code == 0, first.output
    curated = ingest_rows(db)
    assert [(r[0], r[2], r[3], r[4]) for r in curated] == [
        (SOURCE, "trades", "v1.0", "curated"),
        (SOURCE_B, "trades", "v1.0", "curated"),
    ]
    assert cli(tmp_path, db_url, full, "verify", "trades", "v1.0", "--source").exit_code == 0

    left_out = cli(tmp_path, db_url, without, "run", "--no-train")
    # Said at most once, and not as a failure of each file.
    assert left_out.exit_code == 0, left_out.output
    assert left_out.output.count("'trades' is not declared") <= 1
    assert ingest_rows(db) == curated

    back = cli(tmp_path, db_url, full, "run", "--no-train")
    assert back.exit_code == 0, back.output
    assert "Nothing new" in back.output
    assert ingest_rows(db) == curated
    verified = cli(tmp_path, db_url, full, "verify", "trades", "v1.0", "--source")
    assert verified.exit_code == 0, verified.output
    assert "VERIFIED datasets/trades/v1.0" in verified.output
