"""`dynamic-assets lifecycle --dry-run` lists the versions a policy would delete and why, and
deletes nothing; `lifecycle` deletes them and names the ledger entry."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets_tests.support.tiers import curated, tier_decls  # noqa: F401


def test_dry_run_lists_deletions_and_why_then_the_pass_deletes(
    curated,  # noqa: F811
    tmp_path,
    drive_root,
    db_url,
):
    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    for ds in data["datasets"]:
        if ds["name"] == "market":
            ds["lifecycle"] = {"hot_versions": 1, "delete_after_days": 30}
        if ds["name"] == "corpus":
            ds["lifecycle"] = {"delete_after_days": 30, "legal_hold": True}
    config = tmp_path / "datasets.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
    }
    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '40 days' "
            "WHERE (name, version) IN (('market', '2024-06-01'), ('corpus', 'v1.0'))"
        )
    runner = CliRunner()
    dry = runner.invoke(main, ["lifecycle", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "would delete market 2024-06-01 from core: delete_after_days (curated " in dry.output
    assert "corpus v1.0: kept under legal hold (delete_after_days" in dry.output
    with curated.connect() as conn:
        assert conn.execute(
            "SELECT status FROM public.datasets WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone() == ("curated",)

    done = runner.invoke(main, ["lifecycle"], env=env)
    assert done.exit_code == 0, done.output
    assert "deleted market 2024-06-01 from core: delete_after_days" in done.output
    assert ", ledger entry " in done.output
    with curated.connect() as conn:
        assert conn.execute(
            "SELECT name, version FROM public.datasets WHERE status = 'deleted'"
        ).fetchall() == [("market", "2024-06-01")]
