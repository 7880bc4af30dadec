"""`dynamic-assets tiers`, `lifecycle [--dry-run]` and `restore` as a data engineer runs them."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets_tests.support.tiers import curated, tier_decls  # noqa: F401


@pytest.fixture
def config(tmp_path):
    def write(budget_mb: float = 500) -> str:
        data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
        data["storage"] = {
            "core": {"budget_mb": budget_mb, "warn_at": 0.8, "critical_at": 0.9},
            "archive": {"folder": "archive"},
        }
        for ds in data["datasets"]:
            if ds["name"] == "market":
                ds["lifecycle"] = {"hot_versions": 1, "archive_after_days": 30}
        path = tmp_path / "datasets.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return str(path)

    return write


def _env(tmp_path, drive_root, db_url, config_path):
    return {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(drive_root),
        "DYNAMIC_ASSETS_CONFIG": config_path,
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
    }


def test_tiers_lifecycle_and_restore(curated, tmp_path, drive_root, db_url, config):  # noqa: F811
    env = _env(tmp_path, drive_root, db_url, config())
    runner = CliRunner()
    report = runner.invoke(main, ["tiers"], env=env)
    assert report.exit_code == 0, report.output
    assert "healthy" in report.output and "of 500 MB" in report.output
    assert "4 version(s) in core" in report.output
    assert "nothing to move" in report.output

    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '40 days' "
            "WHERE name = 'market' AND version = '2024-06-01'"
        )
    report = runner.invoke(main, ["tiers"], env=env)
    line = next(ln for ln in report.output.splitlines() if "core -> archive" in ln)
    assert "market 2024-06-01" in line and "archive_after_days" in line

    dry = runner.invoke(main, ["lifecycle", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would move market 2024-06-01 core -> archive" in dry.output
    with curated.connect() as conn:
        assert conn.execute(
            "SELECT tier FROM datasets WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone() == ("core",)

    moved = runner.invoke(main, ["lifecycle"], env=env)
    assert moved.exit_code == 0, moved.output
    assert "moved market 2024-06-01 core -> archive: 560 rows" in moved.output
    assert list((drive_root / "archive" / "market" / "2024-06-01").glob("*_archive.parquet"))
    report = runner.invoke(main, ["tiers"], env=env)
    assert "1 version(s)" in report.output and "3 version(s) in core" in report.output
    assert "archive  market 2024-06-01" in report.output

    again = runner.invoke(main, ["lifecycle"], env=env)
    assert again.exit_code == 0 and "Nothing to move" in again.output

    back = runner.invoke(main, ["restore", "market", "2024-06-01"], env=env)
    assert back.exit_code == 0, back.output
    assert "restored market 2024-06-01 archive -> core: 560 rows" in back.output
    missing = runner.invoke(main, ["restore", "market", "2024-07-01"], env=env)
    assert missing.exit_code == 1
    assert "market 2024-07-01 is in the core tier" in missing.output


def test_tiers_exits_1_when_core_is_critical(curated, tmp_path, drive_root, db_url, config):  # noqa: F811
    env = _env(tmp_path, drive_root, db_url, config(budget_mb=1))
    report = CliRunner().invoke(main, ["tiers"], env=env)
    assert report.exit_code == 1, report.output
    assert "critical" in report.output.splitlines()[0]
    line = next(ln for ln in report.output.splitlines() if "core -> archive" in ln)
    assert "market 2024-06-01" in line and "core is critical" in line
    assert "embeddings" not in line


def test_verify_an_archived_version_digests_its_archive_copy(
    curated,  # noqa: F811
    tmp_path,
    drive_root,
    db_url,
    config,
):
    from dynamic_assets.provenance.attest import attest_pending
    from dynamic_assets.provenance.signing import load_signing_key

    env = _env(tmp_path, drive_root, db_url, config())
    key = load_signing_key(tmp_path / "home")
    with curated.connect() as conn:
        assert attest_pending(conn, key) is not None
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '40 days' "
            "WHERE name = 'market' AND version = '2024-06-01'"
        )
    runner = CliRunner()
    moved = runner.invoke(main, ["lifecycle"], env=env)
    assert "moved market 2024-06-01 core -> archive: 560 rows" in moved.output

    good = runner.invoke(main, ["verify", "market", "2024-06-01", "--json"], env=env)
    assert good.exit_code == 0, good.output
    steps = {s["name"]: s for s in yaml.safe_load(good.output)["steps"]}
    assert steps["rows"]["status"] == "pass" and "archive" in steps["rows"]["detail"]
    assert steps["content"]["status"] == "pass"

    # One value of the archived file altered in the drive, the file rewritten whole.
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    (path,) = (drive_root / "archive" / "market" / "2024-06-01").glob("*_archive.parquet")
    table = pq.read_table(path)
    i = table.schema.get_field_index("close")
    table = table.set_column(i, "close", pc.add(table.column("close"), 1))
    pq.write_table(table, path)
    bad = runner.invoke(main, ["verify", "market", "2024-06-01"], env=env)
    assert bad.exit_code == 1, bad.output
    assert "FAILED at step content" in bad.output
    assert "archive" in bad.output.split("FAILED at step content", 1)[1]


def test_run_ends_with_a_lifecycle_pass_when_a_storage_plan_is_declared(
    curated,  # noqa: F811
    tmp_path,
    drive_root,
    db_url,
    config,
):
    env = _env(tmp_path, drive_root, db_url, config())
    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '40 days' "
            "WHERE name = 'market' AND version = '2024-06-01'"
        )
    ran = CliRunner().invoke(main, ["run", "--no-train"], env=env)
    assert "moved market 2024-06-01 core -> archive: 560 rows" in ran.output, ran.output
    with curated.connect() as conn:
        assert conn.execute(
            "SELECT tier FROM datasets WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone() == ("archive",)
