"""Migrations: applied once, in order, under a lock; a changed applied migration is refused."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from dynamic_assets.db.migrate import MigrationError, apply_migrations, available_migrations

REGISTRY_TABLES = {
    "datasets",
    "models",
    "experiments",
    "onedrive_ingest",
    "etl_runs",
    "attestations",
}


def tables(conn, schema: str) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
    ).fetchall()
    return {r[0] for r in rows}


def applied(conn) -> list[tuple]:
    return conn.execute(
        "SELECT version, name FROM public.dai_schema_migrations ORDER BY version"
    ).fetchall()


def test_a_fresh_database_gets_the_registry(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert tables(conn, "public") == set()
        assert apply_migrations(conn) == [m.version for m in available_migrations()]
        assert tables(conn, "public") >= REGISTRY_TABLES
        schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}
        assert {"ai_raw", "ai_curated"} <= schemas
        ext = conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchall()
        assert ext == [("vector",)]
        assert conn.execute("SELECT '[1,2,3]'::vector(3)::text").fetchone() == ("[1,2,3]",)
        assert applied(conn) == [(m.version, m.name) for m in available_migrations()]

        # A second call applies nothing.
        assert apply_migrations(conn) == []
        assert applied(conn) == [(m.version, m.name) for m in available_migrations()]


def test_the_database_fixture_is_migrated(db):
    with db.connect() as conn:
        assert tables(conn, "public") >= REGISTRY_TABLES
        assert apply_migrations(conn) == []


def write_migrations(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_a_changed_migration_is_refused(db_url, tmp_path):
    folder = write_migrations(
        tmp_path / "mig", {"0001_first.sql": "CREATE TABLE public.t1 (n int);"}
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert apply_migrations(conn, folder) == [1]

        (folder / "0001_first.sql").write_text("CREATE TABLE public.t1 (n bigint);")
        (folder / "0002_second.sql").write_text("CREATE TABLE public.t2 (n int);")
        with pytest.raises(MigrationError, match="0001_first was changed after it was applied"):
            apply_migrations(conn, folder)
        # Nothing of the refused run happened.
        assert "t2" not in tables(conn, "public")
        assert applied(conn) == [(1, "first")]

        # Restoring the file lets the new migration through.
        (folder / "0001_first.sql").write_text("CREATE TABLE public.t1 (n int);")
        assert apply_migrations(conn, folder) == [2]
        assert {"t1", "t2"} <= tables(conn, "public")


def test_a_failing_migration_applies_nothing_of_its_run(db_url, tmp_path):
    folder = write_migrations(
        tmp_path / "mig",
        {
            "0001_ok.sql": "CREATE TABLE public.t1 (n int);",
            "0002_broken.sql": "CREATE TABLE public.t2 (n no_such_type);",
        },
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error):
            apply_migrations(conn, folder)
        # One transaction: not even the migrations table or the first migration remains.
        assert tables(conn, "public") == set()


def test_badly_named_migration_files_are_refused(db_url, tmp_path):
    folder = write_migrations(tmp_path / "mig", {"first.sql": "SELECT 1;"})
    with (
        psycopg.connect(db_url, autocommit=True) as conn,
        pytest.raises(MigrationError, match="NNNN_name.sql"),
    ):
        apply_migrations(conn, folder)
    folder = write_migrations(
        tmp_path / "dup", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}
    )
    with (
        psycopg.connect(db_url, autocommit=True) as conn,
        pytest.raises(MigrationError, match="share a version number"),
    ):
        apply_migrations(conn, folder)


@pytest.mark.parametrize("which", ["packaged", "folder"])
def test_two_threads_applying_at_once_apply_once(db_url, tmp_path, which):
    if which == "packaged":
        args: tuple = ()
        expected = [(m.version, m.name) for m in available_migrations()]
    else:
        # Not idempotent on purpose: running it twice would fail or count 2.
        folder = write_migrations(
            tmp_path / "mig",
            {
                "0001_slow.sql": "SELECT pg_sleep(0.3); CREATE TABLE public.counter (n int);",
                "0002_count.sql": "INSERT INTO public.counter VALUES (1);",
            },
        )
        args = (folder,)
        expected = [(1, "slow"), (2, "count")]
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def run(i: int) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                barrier.wait()
                results[i] = apply_migrations(conn, *args)
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(isinstance(r, BaseException) for r in results), results
    assert sorted(results, key=len) == [[], [v for v, _ in expected]]
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert applied(conn) == expected
        if which == "folder":
            assert conn.execute("SELECT count(*) FROM public.counter").fetchone() == (1,)
        else:
            assert tables(conn, "public") >= REGISTRY_TABLES
