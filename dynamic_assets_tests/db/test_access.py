"""Row level security and grants, proven against the real embedded PostgreSQL: each role logs in
(SET ROLE from the superuser connection: row level security applies to the current role, and so
do privileges) and tries to read and write every kind of table."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from psycopg import sql

from dynamic_assets.db import Database
from dynamic_assets.db.access import AccessError, apply_access, readers_of, secure_registry
from dynamic_assets.db.migrate import apply_migrations
from dynamic_assets.db.tables import partition_name
from dynamic_assets.declarations.model import (
    DEMO_CONFIG,
    ConfigError,
    Dataset,
    Declarations,
    load_declarations,
)
from dynamic_assets_tests.support.demo_db import curated_demo_database
from dynamic_assets_tests.support.postgres import create_database, embedded_server
from dynamic_assets_tests.support.staging import curate_version

RESEARCH = "dai_test_research"  # a role a declaration names as an extra reader
ROLES = ["anon", "authenticated", "dai_trainer", "dai_auditor", "service_role", RESEARCH]
REGISTRY = [
    "datasets",
    "models",
    "experiments",
    "onedrive_ingest",
    "etl_runs",
    "attestations",
    "dataset_proofs",
    "version_schemas",
    "webhook_deliveries",
]  # named in the issue; every other table of the migrations is checked too (registry_tables)


def registry_tables(conn: psycopg.Connection) -> list[str]:
    """Every table the migrations created in `public`."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'p') ORDER BY 1"
        )
    ]
    assert set(REGISTRY) <= set(names)
    return names


def _ensure_role(url: str, role: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN "
                "CREATE ROLE {role} NOLOGIN; END IF; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ).format(lit=sql.Literal(role), role=sql.Identifier(role))
        )


@pytest.fixture(scope="module")
def secured_decls() -> Declarations:
    """The demo (market public, corpus internal, embeddings sensitive) with one extra reader."""
    decls = load_declarations(DEMO_CONFIG)
    emb = decls.dataset("embeddings").model_copy(update={"readers": [RESEARCH]})
    return decls.model_copy(
        update={"datasets": [emb if d.name == "embeddings" else d for d in decls.datasets]}
    )


@pytest.fixture
def curated_url(pg_server, secured_decls, tmp_path_factory) -> str:
    _ensure_role(pg_server.get_uri(), RESEARCH)
    root = tmp_path_factory.getbasetemp() / "security-demo"
    root.mkdir(exist_ok=True)
    return curated_demo_database(pg_server, root, secured_decls)


def attempt(conn: psycopg.Connection, role: str, statement: str) -> str:
    """Run one statement as `role`: 'rows:N' (read N rows), 'ok' (wrote), or 'denied'."""
    conn.execute("BEGIN")
    try:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        cur = conn.execute(statement)
        if cur.description is not None:
            return f"rows:{len(cur.fetchall())}"
        return "ok"
    except psycopg.errors.InsufficientPrivilege:
        return "denied"
    finally:
        conn.execute("ROLLBACK")


def market_partition() -> str:
    return f'ai_curated."{partition_name("market", "2024-06-01")}"'


def test_each_role_reads_what_its_sensitivity_allows_and_nobody_writes(curated_url):
    reads = {
        "public dataset (market)": "SELECT * FROM ai_curated.market",
        "internal dataset (corpus)": "SELECT * FROM ai_curated.corpus",
        "sensitive dataset (embeddings)": "SELECT * FROM ai_curated.embeddings",
        "a partition directly": f"SELECT * FROM {market_partition()}",
        "staging ai_raw.market": "SELECT * FROM ai_raw.market",
        "staging ai_raw.embeddings": "SELECT * FROM ai_raw.embeddings",
    }
    writes = {
        "update a public dataset": "UPDATE ai_curated.market SET note = 'x'",
        "insert into an internal dataset": "INSERT INTO ai_curated.corpus (dataset_version, doc_id, lang, body, "
        "_source_file_id, _source_row, _schema_version) VALUES ('2024-06-01', 'x', 'en', 'b', 1, 1, 1)",
        "delete from a sensitive dataset": "DELETE FROM ai_curated.embeddings",
        "truncate a public dataset": "TRUNCATE ai_curated.market",
        "update the registry": "UPDATE public.datasets SET fingerprint = 'forged'",
        "delete ingest records": "DELETE FROM public.onedrive_ingest",
        "write staging": "DELETE FROM ai_raw.market",
    }
    with psycopg.connect(curated_url, autocommit=True) as conn:
        tables = registry_tables(conn)
        reads.update({f"registry {t}": f"SELECT * FROM public.{t}" for t in tables})
        totals = {
            t: conn.execute(f"SELECT count(*) FROM ai_curated.{t}").fetchone()[0]
            for t in ("market", "corpus", "embeddings")
        }
        part_rows = conn.execute(f"SELECT count(*) FROM {market_partition()}").fetchone()[0]
        observed = {
            (what, role): attempt(conn, role, stmt)
            for what, stmt in {**reads, **writes}.items()
            for role in ROLES
        }
        registry_rows = {
            t: conn.execute(f"SELECT count(*) FROM public.{t}").fetchone()[0] for t in tables
        }

    full = lambda t: f"rows:{totals[t]}"  # noqa: E731
    expected: dict[tuple[str, str], str] = {}
    for role in ROLES:
        expected[("public dataset (market)", role)] = (
            "denied" if role == RESEARCH else full("market")
        )
        expected[("internal dataset (corpus)", role)] = (
            full("corpus") if role in ("dai_trainer", "dai_auditor", "service_role") else "denied"
        )
        expected[("sensitive dataset (embeddings)", role)] = (
            full("embeddings") if role in ("service_role", RESEARCH) else "denied"
        )
        expected[("a partition directly", role)] = "denied"
        expected[("staging ai_raw.market", role)] = "denied"
        expected[("staging ai_raw.embeddings", role)] = "denied"
        for t in tables:
            expected[(f"registry {t}", role)] = (
                f"rows:{registry_rows[t]}" if role in ("dai_auditor", "service_role") else "denied"
            )
        for what in writes:
            expected[(what, role)] = "denied"
    assert all(totals.values()) and part_rows > 0
    assert observed == expected


def test_a_trainer_login_reads_internal_data_but_not_staging_sensitive_or_writes(
    curated_url, pg_server
):
    """A LOGIN user that is a member of dai_trainer, connecting on its own."""
    user = f"trainer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE dai_trainer").format(sql.Identifier(user))
        )
    try:
        url = curated_url.replace("//postgres:", f"//{user}:", 1)
        assert user in url
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == user
            assert conn.execute("SELECT count(*) FROM ai_curated.corpus").fetchone()[0] > 0
            assert (
                conn.execute(
                    "SELECT count(*) FROM ai_curated.market WHERE dataset_version = '2024-06-01'"
                ).fetchone()[0]
                == 560
            )
            for statement, message in [
                ("SELECT * FROM ai_raw.market", "permission denied for schema ai_raw"),
                ("SELECT * FROM ai_curated.embeddings", "permission denied for table embeddings"),
                ("UPDATE ai_curated.market SET close = 0", "permission denied for table market"),
                (
                    "SELECT * FROM public.onedrive_ingest",
                    "permission denied for table onedrive_ingest",
                ),
            ]:
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message):
                    conn.execute(statement)
            # The catalog view shows the versions it may read, and nothing of the others.
            names = {r[0] for r in conn.execute("SELECT name FROM public.curated_versions")}
            assert names == {"market", "corpus"}
    finally:
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


def test_the_catalog_view_shows_each_role_only_what_it_may_read(curated_url):
    with psycopg.connect(curated_url, autocommit=True) as conn:
        seen = {}
        for role in ROLES:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            seen[role] = {r[0] for r in conn.execute("SELECT name FROM public.curated_versions")}
            conn.execute("RESET ROLE")
            update = "UPDATE public.curated_versions SET fingerprint = 'forged'"
            assert attempt(conn, role, update) == "denied"
    assert seen == {
        "anon": {"market"},
        "authenticated": {"market"},
        "dai_trainer": {"market", "corpus"},
        "dai_auditor": {"market", "corpus"},
        "service_role": {"market", "corpus", "embeddings"},
        RESEARCH: {"embeddings"},
    }


def test_policies_and_grants_on_the_curated_tables(curated_url, secured_decls):
    with psycopg.connect(curated_url, autocommit=True) as conn:
        policies = {
            (r[0], r[1]): (r[2], r[3], r[4])
            for r in conn.execute(
                "SELECT tablename, policyname, cmd, roles::text[], qual FROM pg_policies "
                "WHERE schemaname = 'ai_curated' ORDER BY 1, 2"
            )
        }
        rls = dict(
            conn.execute(
                "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'ai_curated' AND c.relkind = 'p'"
            ).fetchall()
        )
    assert rls == {"market": True, "corpus": True, "embeddings": True}
    for ds in secured_decls.datasets:
        mine = {p: v for (t, p), v in policies.items() if t == ds.name}
        assert mine == {f"dai_read_{r}": ("SELECT", [r], "true") for r in readers_of(ds)}
    assert readers_of(secured_decls.dataset("embeddings")) == ("service_role", RESEARCH)


def test_rls_hides_rows_from_a_role_granted_select_by_hand_and_apply_access_revokes_it(
    curated_url, secured_decls
):
    with psycopg.connect(curated_url, autocommit=True) as conn:
        conn.execute("GRANT SELECT, UPDATE ON ai_curated.embeddings TO dai_trainer")
        # The grant lets the trainer query the table; without a policy it sees no row and
        # changes none.
        assert attempt(conn, "dai_trainer", "SELECT * FROM ai_curated.embeddings") == "rows:0"
        conn.execute("BEGIN")
        conn.execute("SET LOCAL ROLE dai_trainer")
        assert conn.execute("UPDATE ai_curated.embeddings SET label = 'x'").rowcount == 0
        conn.execute("ROLLBACK")
        change = apply_access(conn, secured_decls.dataset("embeddings"))
        assert change.revoked == ["dai_trainer"] and not change.granted
        assert attempt(conn, "dai_trainer", "SELECT * FROM ai_curated.embeddings") == "denied"


def test_a_changed_sensitivity_applies_and_an_unchanged_one_takes_no_lock(
    curated_url, secured_decls
):
    corpus = secured_decls.dataset("corpus")
    with (
        psycopg.connect(curated_url, autocommit=True) as conn,
        psycopg.connect(curated_url, autocommit=True) as reader,
    ):
        # A long read holds a lock on the table; applying an unchanged declaration must not wait.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM ai_curated.corpus").fetchone()
        conn.execute("SET lock_timeout = '2s'")
        unchanged = apply_access(conn, corpus)
        assert not unchanged.changed
        reader.execute("ROLLBACK")

        sensitive = apply_access(conn, corpus.model_copy(update={"sensitivity": "sensitive"}))
        assert set(sensitive.revoked) == {"dai_trainer", "dai_auditor"}
        assert set(sensitive.policies_dropped) == {"dai_read_dai_trainer", "dai_read_dai_auditor"}
        assert attempt(conn, "dai_trainer", "SELECT * FROM ai_curated.corpus") == "denied"
        assert attempt(conn, "service_role", "SELECT 1 FROM ai_curated.corpus LIMIT 1") == "rows:1"

        public = apply_access(conn, corpus.model_copy(update={"sensitivity": "public"}))
        assert set(public.granted) == {"anon", "authenticated", "dai_trainer", "dai_auditor"}
        assert attempt(conn, "anon", "SELECT 1 FROM ai_curated.corpus LIMIT 1") == "rows:1"


def test_partitions_are_never_readable_directly(curated_url, secured_decls, tmp_path):
    from dynamic_assets.demo.seed import seed_drive
    from dynamic_assets.drive import LocalDrive

    db = Database(curated_url)
    seed_drive(tmp_path / "drive")
    drive = LocalDrive(tmp_path / "drive")
    with db.connect(autocommit=True) as conn:
        # Someone opens a partition by hand...
        conn.execute(f"ALTER TABLE {market_partition()} DISABLE ROW LEVEL SECURITY")
        conn.execute(f"GRANT SELECT ON {market_partition()} TO anon")
        assert attempt(conn, "anon", f"SELECT 1 FROM {market_partition()} LIMIT 1") == "rows:1"
    # ...the next promotion of the dataset closes it again, and builds its own partition closed.
    curate_version(db, drive, secured_decls, "market", "2024-07-01")
    with db.connect(autocommit=True) as conn:
        parts = conn.execute(
            "SELECT c.relname, c.relrowsecurity, NOT EXISTS (SELECT 1 FROM aclexplode(c.relacl) a "
            "WHERE a.grantee <> c.relowner) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'ai_curated.market'::regclass"
        ).fetchall()
        for role in ROLES:
            for part in (
                market_partition(),
                f'ai_curated."{partition_name("market", "2024-07-01")}"',
            ):
                assert attempt(conn, role, f"SELECT 1 FROM {part} LIMIT 1") == "denied"
        assert attempt(conn, "anon", "SELECT 1 FROM ai_curated.market LIMIT 1") == "rows:1"
    assert {name: (rls, no_grant) for name, rls, no_grant in parts} == {
        partition_name("market", v): (True, True) for v in ("2024-06-01", "2024-07-01")
    }


def test_readers_are_validated_in_the_declaration_and_must_exist(curated_url, tmp_path):
    base = load_declarations(DEMO_CONFIG).dataset("embeddings").model_dump()
    for bad, message in [
        ("anon", "declare `sensitivity: public`"),
        ("PUBLIC", "is not allowed"),
        ("x; DROP TABLE datasets", "is not allowed"),
        ('dai"trainer', "is not allowed"),
        ("pg_read_all_data", "cannot be named as a reader"),
    ]:
        with pytest.raises(ValueError, match=message):
            Dataset.model_validate({**base, "readers": [bad]})
    path = tmp_path / "decl.yaml"
    path.write_text(
        "datasets:\n  - name: d\n    columns: [{name: a}]\n    readers: [authenticated]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="role 'authenticated' cannot be named as a reader"):
        load_declarations(path)

    ghost = Dataset.model_validate({**base, "readers": ["dai_no_such_role"]})
    with psycopg.connect(curated_url, autocommit=True) as conn:
        before = conn.execute("SELECT count(*) FROM pg_policies").fetchone()[0]
        with pytest.raises(
            AccessError, match=r"readers name role\(s\) that do not exist: \['dai_no_such_role'\]"
        ):
            apply_access(conn, ghost)
        assert conn.execute("SELECT count(*) FROM pg_policies").fetchone()[0] == before


def _supabase_like(conn: psycopg.Connection) -> None:
    """What a Supabase project has before our migrations: PostgREST's login role and default
    privileges that open every new table in `public` to anon and authenticated."""
    conn.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN "
        "CREATE ROLE authenticator NOINHERIT LOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    conn.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role"
    )
    conn.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role"
    )


def test_on_a_supabase_like_database_the_registry_stays_closed_to_anon(pg_server):
    for role in ("anon", "authenticated", "service_role"):  # Supabase has them already
        _ensure_role(pg_server.get_uri(), role)
    url = pg_server.get_uri(create_database(pg_server))
    with psycopg.connect(url, autocommit=True) as conn:
        _supabase_like(conn)
    Database(url).uri  # noqa: B018 - applies the migrations, then the registry grants
    with psycopg.connect(url, autocommit=True) as conn:
        for t in registry_tables(conn):
            for role in ("anon", "authenticated"):
                assert attempt(conn, role, f"SELECT * FROM public.{t}") == "denied", (t, role)
            assert attempt(conn, "service_role", f"DELETE FROM public.{t}") == "denied", t
            assert attempt(conn, "dai_auditor", f"SELECT 1 FROM public.{t}").startswith("rows:"), t
        seqs = conn.execute(
            "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE c.relkind = 'S' "
            "AND c.relnamespace = 'public'::regnamespace AND a.grantee <> c.relowner"
        ).fetchone()[0]
        assert seqs == 0
        member = conn.execute(
            "SELECT pg_has_role('authenticator', 'dai_trainer', 'MEMBER')"
        ).fetchone()[0]
        assert member  # PostgREST may switch to dai_trainer for a key with that role claim
        # Idempotent: applying again changes nothing.
        assert secure_registry(conn) == 0


def test_migrations_create_the_roles_once_per_server_and_run_in_parallel_databases():
    """A fresh server with none of the roles; three databases migrate at the same moment."""
    with embedded_server("dai-test-roles-") as server:
        admin = server.get_uri()
        with psycopg.connect(admin, autocommit=True) as conn:
            assert not conn.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname IN ('anon', 'dai_trainer')"
            ).fetchone()[0]
        names = [create_database(server, f"m{i}") for i in range(3)]
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(names))

        def migrate(n: str) -> None:
            try:
                with psycopg.connect(server.get_uri(n), autocommit=True) as c:
                    barrier.wait()
                    apply_migrations(c)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=migrate, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with psycopg.connect(admin, autocommit=True) as conn:
            roles = conn.execute(
                "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles "
                "WHERE rolname IN ('anon', 'authenticated', 'service_role', 'dai_trainer', 'dai_auditor') "
                "ORDER BY 1"
            ).fetchall()
        assert roles == [
            (r, False, False, False)
            for r in sorted(["anon", "authenticated", "service_role", "dai_trainer", "dai_auditor"])
        ]
        for n in names:
            with psycopg.connect(server.get_uri(n), autocommit=True) as c:
                assert apply_migrations(c) == []  # applied once, never again
