"""The command line a data engineer uses: seed, run (twice), declare."""

from pathlib import Path

import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations


def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(tmp_path / "drive"),
        "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
    }


def test_seed_then_run_curates_everything_then_finds_nothing_new(tmp_path, db_url, db):
    runner = CliRunner()
    seeded = runner.invoke(main, ["seed"], env=env(tmp_path, db_url))
    assert seeded.exit_code == 0, seeded.output
    assert (
        "nasdaq.csv" in seeded.output
        and (tmp_path / "drive" / "datasets" / "market" / "2024-06-01").is_dir()
    )

    first = runner.invoke(main, ["run"], env=env(tmp_path, db_url))
    assert first.exit_code == 0, first.output
    for ds, version, rows in [
        ("market", "2024-06-01", "560"),
        ("corpus", "v1.1", "270"),
        ("embeddings", "v2.3.1", "330"),
    ]:
        line = next(
            ln for ln in first.output.splitlines() if ds in ln and version in ln and "curated" in ln
        )
        assert rows in line
    with db.connect() as conn:
        assert (
            conn.execute("SELECT count(*) FROM datasets WHERE status = 'curated'").fetchone()[0]
            == 6
        )

    again = runner.invoke(main, ["run"], env=env(tmp_path, db_url))
    assert again.exit_code == 0
    assert "Nothing new" in again.output


def test_run_exits_1_naming_the_bad_file(tmp_path, db_url):
    runner = CliRunner()
    runner.invoke(main, ["seed"], env=env(tmp_path, db_url))
    bad = tmp_path / "drive" / "datasets" / "market" / "2024-07-01" / "broken.csv"
    bad.write_text("date,symbol\n2024-07-01,AAPL\n", encoding="utf-8")
    stray = tmp_path / "drive" / "datasets" / "weather" / "2024-01-01"
    stray.mkdir(parents=True)
    (stray / "obs.csv").write_text("t,temp\n1,2\n", encoding="utf-8")

    result = runner.invoke(main, ["run"], env=env(tmp_path, db_url))
    assert result.exit_code == 1
    out = result.output
    failed = next(ln for ln in out.splitlines() if "2024-07-01" in ln and "failed" in ln)
    assert "market" in failed
    assert (
        "market 2024-07-01  datasets/market/2024-07-01/broken.csv: line 1: the header does not match"
        in out
    )
    assert "datasets/weather/2024-01-01/obs.csv: dataset 'weather' is not declared" in out
    # The other versions went through.
    assert any("2024-06-01" in ln and "curated" in ln for ln in out.splitlines())


def test_declare_writes_a_declaration_that_loads(tmp_path):
    sample = tmp_path / "samples"
    sample.mkdir()
    (sample / "trades.csv").write_text(
        "trade_id,ts,price,qty,side\n"
        + "".join(
            f"{i},2024-06-01T10:00:{i % 60:02d}Z,{100 + i * 0.5},{i % 7 + 1},{'buy' if i % 2 else 'sell'}\n"
            for i in range(60)
        ),
        encoding="utf-8",
    )
    config = tmp_path / "decls.yaml"
    config.write_text(DEMO_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["declare", "trades", "--from", str(sample), "--config", str(config)],
        env={"DYNAMIC_ASSETS_HOME": str(tmp_path / "h")},
    )
    assert result.exit_code == 0, result.output
    decls = load_declarations(config)
    trades = decls.dataset("trades")
    assert {c.name: c.type for c in trades.columns} == {
        "trade_id": "integer",
        "ts": "timestamp",
        "price": "float",
        "qty": "integer",
        "side": "string",
    }
    assert trades.primary_key == ["trade_id"]
    assert trades.formats == ["csv"]
    assert decls.dataset("market").primary_key == ["date", "symbol"]  # existing declarations kept
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert [d["name"] for d in raw["datasets"]] == ["market", "corpus", "embeddings", "trades"]

    twice = CliRunner().invoke(
        main, ["declare", "trades", "--from", str(sample), "--config", str(config)]
    )
    assert twice.exit_code == 2
    assert "already declared" in twice.output and "--replace" in twice.output
