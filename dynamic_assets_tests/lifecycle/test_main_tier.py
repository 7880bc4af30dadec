"""The main tier: a second Postgres database on the embedded server, reached through the URL in
MAIN_DB_URL. Versions beyond `hot_versions` stream there by binary COPY, verified against their
fingerprint before core drops them; they read, verify and restore from there."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main as cli
from dynamic_assets.db.tables import partition_name
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.declarations.storage import Lifecycle, MainTier
from dynamic_assets.lifecycle.run import run_pass
from dynamic_assets.read.curated import read_curated
from dynamic_assets_tests.support.postgres import create_database

V = ("market", "2024-06-01")
P1 = partition_name(*V)
P2 = partition_name("market", "2024-07-01")


@pytest.fixture
def main_url(pg_server, monkeypatch) -> str:
    url = pg_server.get_uri(create_database(pg_server, "main"))
    monkeypatch.setenv("MAIN_DB_URL", url)
    return url


@pytest.fixture
def main_decls(tier_decls):
    tier_decls.storage.main = MainTier(url_env="MAIN_DB_URL")
    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1)
    return tier_decls


def _rows(db, drive, version=V[1]):
    table = read_curated("market", version=version, as_arrow=True, database=db, drive=drive)
    return table.sort_by([("date", "ascending"), ("symbol", "ascending")])


def _tier(db):
    with db.connect() as conn:
        return conn.execute(
            "SELECT tier FROM public.datasets WHERE name = %s AND version = %s", V
        ).fetchone()[0]


def _partitions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'ai_curated' AND c.relname LIKE 'market\\_\\_%%' "
                "AND c.relkind = 'r' ORDER BY 1"
            ).fetchall()
        ]


def test_a_version_beyond_hot_versions_moves_to_main_and_reads_back_from_it(
    curated, drive, db_url, main_url, main_decls
):
    before = _rows(curated, drive)
    with curated.connect() as conn:
        fp = conn.execute(
            "SELECT fingerprint FROM public.datasets WHERE name = %s AND version = %s", V
        ).fetchone()[0]

    done = run_pass(curated, drive, main_decls)

    assert done.failed == []
    assert [(m.dataset, m.version) for m in done.moved] == [V]
    assert _tier(curated) == "main"
    assert _partitions(db_url) == [P2]
    assert _partitions(main_url) == [P1]
    with psycopg.connect(main_url) as conn:
        assert conn.execute("SELECT count(*) FROM ai_curated.market").fetchone() == (560,)
    with curated.connect() as conn:
        locations = conn.execute(
            "SELECT platform_locations FROM public.datasets WHERE name = %s AND version = %s", V
        ).fetchone()[0]
    assert locations["main"]["url_env"] == "MAIN_DB_URL"
    assert "postgres" not in locations
    assert main_url not in str(locations) and "password" not in str(locations)
    assert _rows(curated, drive).equals(before)
    pinned = read_curated("market", version=V[1], database=curated, expected_fingerprint=fp)
    assert len(pinned) == 560

    again = run_pass(curated, drive, main_decls)
    assert again.moved == [] and again.failed == []


def test_a_copy_on_main_that_differs_from_the_fingerprint_is_refused(
    curated, drive, main_url, main_decls
):
    run_pass(curated, drive, main_decls)
    with psycopg.connect(main_url) as conn:
        conn.execute(
            "UPDATE ai_curated.market SET close = close + 1 WHERE (date, symbol) = "
            "(SELECT date, symbol FROM ai_curated.market LIMIT 1)"
        )
    from dynamic_assets.read.curated import FingerprintMismatch

    with curated.connect() as conn:
        fp = conn.execute(
            "SELECT fingerprint FROM public.datasets WHERE name = %s AND version = %s", V
        ).fetchone()[0]
    with pytest.raises(FingerprintMismatch, match="row contents"):
        read_curated("market", version=V[1], database=curated, expected_fingerprint=fp)

    from dynamic_assets.lifecycle.main_tier import MainTierError, restore_from_main

    with pytest.raises(MainTierError, match=r"market 2024-06-01 \(core tier\).*does not match"):
        restore_from_main(curated, *V)
    assert _tier(curated) == "main"
    assert _partitions(main_url) == [P1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_main_tier_names_version_and_tier_and_drops_nothing(
    curated, drive, db_url, main_url, main_decls, monkeypatch
):
    before = _rows(curated, drive)
    unreachable = f"postgresql://u:s3cret-pw@127.0.0.1:{_closed_port()}/main"
    monkeypatch.setenv("MAIN_DB_URL", unreachable)
    done = run_pass(curated, drive, main_decls)
    assert done.moved == []
    [failure] = done.failed
    assert "market 2024-06-01 (main tier)" in failure and "unreachable" in failure
    assert "s3cret-pw" not in failure
    assert _tier(curated) == "core"
    assert _partitions(db_url) == [P1, P2]
    assert _rows(curated, drive).equals(before)

    monkeypatch.setenv("MAIN_DB_URL", main_url)
    resumed = run_pass(curated, drive, main_decls)
    assert resumed.failed == [] and [(m.dataset, m.version) for m in resumed.moved] == [V]
    monkeypatch.setenv("MAIN_DB_URL", unreachable)
    from dynamic_assets.lifecycle.main_tier import MainTierError

    with pytest.raises(MainTierError, match=r"market 2024-06-01 \(main tier\).*unreachable") as exc:
        _rows(curated, drive)
    assert "s3cret-pw" not in str(exc.value)
    monkeypatch.setenv("MAIN_DB_URL", main_url)
    assert _rows(curated, drive).equals(before)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from dynamic_assets.db import Database
    from dynamic_assets.lifecycle.main_tier import move_to_main

    url, main_url, at = sys.argv[1:]

    def step(name):
        if name == at:
            os.kill(os.getpid(), signal.SIGKILL)

    move_to_main(Database(url), Database(main_url, migrate=False), "MAIN_DB_URL",
                 "market", "2024-06-01", step=step)
    """
)


@pytest.mark.parametrize("at", ["copied", "verified", "dropped"])
def test_killed_move_to_main_leaves_the_version_readable_and_the_next_pass_finishes(
    curated, db_url, main_url, drive, main_decls, at
):
    before = _rows(curated, drive)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, db_url, main_url, at],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _tier(curated) == ("main" if at == "dropped" else "core")
    assert _rows(curated, drive).equals(before)

    done = run_pass(curated, drive, main_decls)
    assert done.failed == []
    assert [(m.dataset, m.version) for m in done.moved] == ([] if at == "dropped" else [V])
    assert _tier(curated) == "main"
    assert _partitions(main_url) == [P1]
    assert _rows(curated, drive).equals(before)


def _env(tmp_path, drive_root, db_url, main: bool = True):
    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    data["storage"] = {"core": {"budget_mb": 500}, "archive": {"folder": "archive"}}
    if main:
        data["storage"]["main"] = {"url_env": "MAIN_DB_URL"}
    for ds in data["datasets"]:
        if ds["name"] == "market":
            ds["lifecycle"] = {"hot_versions": 1}
        if ds["name"] == "embeddings":
            ds["sensitivity"] = "internal"
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(path),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
    }


def test_lifecycle_tiers_verify_and_restore_with_a_main_tier(
    curated, tmp_path, drive, drive_root, db_url, main_url
):
    env = _env(tmp_path, drive_root, db_url)
    runner = CliRunner()
    dry = runner.invoke(cli, ["lifecycle", "--dry-run"], env=env)
    assert "would move market 2024-06-01 core -> main" in dry.output, dry.output

    moved = runner.invoke(cli, ["lifecycle"], env=env)
    assert moved.exit_code == 0, moved.output
    assert "moved market 2024-06-01 core -> main: 560 rows" in moved.output
    assert main_url not in moved.output

    report = runner.invoke(cli, ["tiers"], env=env)
    assert report.exit_code == 0, report.output
    main_line = next(ln for ln in report.output.splitlines() if ln.startswith("main "))
    assert "MB" in main_line and "1 version(s)" in main_line, report.output
    assert "  main     market 2024-06-01" in report.output
    assert main_url not in report.output

    verified = runner.invoke(cli, ["verify", "market", "2024-06-01", "--json"], env=env)
    steps = {s["name"]: s for s in yaml.safe_load(verified.output)["steps"]}
    assert steps["rows"]["status"] == "pass" and "main tier" in steps["rows"]["detail"]
    assert steps["content"]["status"] == "pass"

    back = runner.invoke(cli, ["restore", "market", "2024-06-01", "--to", "core"], env=env)
    assert back.exit_code == 0, back.output
    assert "restored market 2024-06-01 main -> core: 560 rows" in back.output
    assert _tier(curated) == "core"
    assert _partitions(main_url) == []
    assert P1 in _partitions(db_url)

    assert runner.invoke(cli, ["lifecycle"], env=env).exit_code == 0
    with psycopg.connect(main_url) as conn:
        conn.execute(
            "DELETE FROM ai_curated.market WHERE (date, symbol) = "
            "(SELECT date, symbol FROM ai_curated.market LIMIT 1)"
        )
    tampered = runner.invoke(cli, ["verify", "market", "2024-06-01", "--json"], env=env)
    assert tampered.exit_code == 1
    steps = {s["name"]: s for s in yaml.safe_load(tampered.output)["steps"]}
    assert steps["rows"]["status"] == "fail" and "559" in steps["rows"]["detail"]


def test_archive_from_main_and_restore_to_main(
    curated, tmp_path, drive, drive_root, db_url, main_url, main_decls
):
    before = _rows(curated, drive)
    run_pass(curated, drive, main_decls)
    assert _tier(curated) == "main"
    main_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, archive_after_days=1)
    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '2 days' "
            "WHERE name = %s AND version = %s",
            V,
        )
    done = run_pass(curated, drive, main_decls)
    assert done.failed == []
    assert _tier(curated) == "archive"
    assert _partitions(main_url) == []
    assert list((drive_root / "archive" / "market" / "2024-06-01").glob("*_archive.parquet"))
    assert _rows(curated, drive).equals(before)

    env = _env(tmp_path, drive_root, db_url)
    back = CliRunner().invoke(cli, ["restore", "market", "2024-06-01", "--to", "main"], env=env)
    assert back.exit_code == 0, back.output
    assert "restored market 2024-06-01 archive -> main: 560 rows" in back.output
    assert _tier(curated) == "main"
    assert _partitions(main_url) == [P1]
    assert _rows(curated, drive).equals(before)


def test_vectors_and_json_travel_to_main_and_back_unchanged(curated, drive, main_url):
    from dynamic_assets.db import Database
    from dynamic_assets.lifecycle.main_tier import move_to_main, restore_from_main

    def rows(dataset, version):
        table = read_curated(dataset, version=version, as_arrow=True, database=curated)
        return table.sort_by([(table.column_names[0], "ascending")])

    before = {v: rows(*v) for v in (("embeddings", "v2.3"), ("corpus", "v1.0"))}
    for dataset, version in before:
        moved = move_to_main(
            curated, Database(main_url, migrate=False), "MAIN_DB_URL", dataset, version
        )
        assert moved is not None and moved.rows == before[(dataset, version)].num_rows
        assert rows(dataset, version).equals(before[(dataset, version)])
        restore_from_main(curated, dataset, version)
        assert rows(dataset, version).equals(before[(dataset, version)])


def test_a_version_in_main_of_a_dataset_declared_sensitive_since_comes_back_to_core(
    curated, tmp_path, drive, drive_root, db_url, main_url, main_decls, monkeypatch
):
    """Main applies neither a sensitive dataset's readers' grants nor row level security: a
    version that went there before its dataset was declared sensitive is brought back into
    core by the next pass, verified, and dropped from main."""
    monkeypatch.delenv("DYNAMIC_ASSETS_ARCHIVE_KEY", raising=False)
    before = _rows(curated, drive)
    run_pass(curated, drive, main_decls)
    assert _tier(curated) == "main"

    env = _env(tmp_path, drive_root, db_url)
    config = Path(env["DYNAMIC_ASSETS_CONFIG"])
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    next(d for d in data["datasets"] if d["name"] == "market")["sensitivity"] = "sensitive"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    runner = CliRunner()
    report = runner.invoke(cli, ["tiers"], env=env)
    assert (
        "  market 2024-06-01 main -> core: sensitive: the main tier applies neither its "
        "readers' grants nor row level security"
    ) in report.output, report.output

    moved = runner.invoke(cli, ["lifecycle"], env=env)
    assert moved.exit_code == 0, moved.output
    assert "moved market 2024-06-01 main -> core: 560 rows, verified" in moved.output
    assert _tier(curated) == "core"
    assert _partitions(main_url) == []
    assert sorted(_partitions(db_url)) == sorted([P1, P2])
    assert _rows(curated, drive).equals(before)

    main_decls.dataset("market").sensitivity = "sensitive"
    again = run_pass(curated, drive, main_decls)
    assert again.failed == []
    assert [(m.source, m.target) for m in again.plan.moves] == []
