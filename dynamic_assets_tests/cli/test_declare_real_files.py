"""`dynamic-assets declare` on real files, then `dynamic-assets run` on the drive: a new
declarations file, headers that are no identifiers, `v1`/`v2`/`v10` version folders."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets_tests.cli.test_cli import env

CARS = (
    "Name,Adj. Close*,Miles per Gallon,Horsepower\n"
    "chevelle,101.5,18.0,130\n"
    "skylark,99.25,15.0,165\n"
    "satellite,100.0,18.0,150\n"
)


def test_declare_creates_a_declarations_file_that_does_not_exist(tmp_path: Path) -> None:
    sample = tmp_path / "cars.csv"
    sample.write_text(CARS, encoding="utf-8")
    config = tmp_path / "conf" / "new.yaml"

    result = CliRunner().invoke(
        main,
        ["declare", "cars", "--from", str(sample)],
        env={"DYNAMIC_ASSETS_HOME": str(tmp_path / "h"), "DYNAMIC_ASSETS_CONFIG": str(config)},
    )

    assert result.exit_code == 0, result.output
    assert f"Declared cars in {config}" in result.output
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert [d["name"] for d in raw["datasets"]] == ["cars"]  # nothing of the demo copied in


def test_declare_says_why_it_proposes_no_primary_key(tmp_path: Path) -> None:
    sample = tmp_path / "obs.csv"
    sample.write_text("a,b\n1,x\n1,x\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["declare", "obs", "--from", str(sample), "--config", str(tmp_path / "d.yaml")],
        env={"DYNAMIC_ASSETS_HOME": str(tmp_path / "h")},
    )
    assert result.exit_code == 0, result.output
    assert (
        "No primary key proposed: no column, nor pair of columns among a, b, is unique and "
        "never empty over the 2 rows read. Add `primary_key:` by hand if the data has one."
    ) in " ".join(result.output.split())


def test_real_headers_declared_then_run_to_curated_rows_in_v_folders(tmp_path, db_url, db):
    sample = tmp_path / "cars.csv"
    sample.write_text(CARS, encoding="utf-8")
    config = tmp_path / "cars.yaml"
    environ = {**env(tmp_path, db_url), "DYNAMIC_ASSETS_CONFIG": str(config)}
    declared = CliRunner().invoke(main, ["declare", "cars", "--from", str(sample)], env=environ)
    assert declared.exit_code == 0, declared.output
    assert "source: Adj. Close*" in declared.output

    for version in ("v10", "v2", "v1"):
        folder = tmp_path / "drive" / "datasets" / "cars" / version
        folder.mkdir(parents=True)
        (folder / "cars.csv").write_text(CARS, encoding="utf-8")

    result = CliRunner().invoke(main, ["run", "--dataset", "cars", "--no-train"], env=environ)

    assert result.exit_code == 0, result.output
    assert "is not a version" not in result.output
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT dataset_version, name, adj_close, miles_per_gallon, horsepower "
            "FROM ai_curated.cars ORDER BY dataset_version, name"
        ).fetchall()
    assert rows == [
        (version, name, close, mpg, hp)
        for version in ("v1", "v10", "v2")
        for name, close, mpg, hp in [
            ("chevelle", 101.5, 18.0, 130),
            ("satellite", 100.0, 18.0, 150),
            ("skylark", 99.25, 15.0, 165),
        ]
    ]
