"""The main tier: a second Postgres (`storage.main.url_env` names the environment variable holding
its URL; the URL is never written anywhere) holding curated versions moved out of core.

`move_to_main` streams a version's partition from core to main with binary COPY (`COPY (SELECT
...) TO STDOUT (FORMAT binary)` on core piped, chunk by chunk, into `COPY ... FROM STDIN (FORMAT
binary)` on main) into a table beside `ai_curated.<dataset>` on main, a partitioned table of the
same columns as core's. Inside main's transaction the copy's row count and content digest
(`provenance.fingerprint.content_digest`, computed on main) must equal the version's fingerprint
record before it is attached as the version's partition and committed; only then is the core
partition dropped, in one transaction with the registry row (`tier = 'main'`,
`platform_locations.main`). A process killed at any moment leaves the version in core (a copy
left on main is replaced by the next pass) or in main.

`restore_from_main` streams it back the same way; `restore_archive_to_main` loads an archived
version into main, verified like an archive restore; `main_reader` gives what `read_curated` and
`verify` need of a version on main.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dynamic_assets.copies.export import GOVERNANCE
from dynamic_assets.copies.load import CopyError, load_copy, scratch_table
from dynamic_assets.db import Database
from dynamic_assets.db.connection import DatabaseUnreachable
from dynamic_assets.db.tables import (
    CURATED_SCHEMA,
    ident,
    partition_name,
    swap_partition,
    version_lock,
)
from dynamic_assets.declarations.storage import MainTier
from dynamic_assets.drive.base import Drive
from dynamic_assets.lifecycle.archive import (
    ArchiveError,
    Registered,
    _archived_file,
    _drop_partition,
    registered,
)
from dynamic_assets.provenance.fingerprint import FingerprintError, content_digest

MAIN = "main"
Step = Callable[[str], None]


class MainTierError(ArchiveError):
    """A version could not be moved to, read from or restored from the main tier; the message
    names the version and the tier, and nothing was dropped anywhere."""


def main_database(tier: MainTier | None, where: str = "the main tier") -> Database | None:
    """The main tier's database from the URL in its environment variable (None when no main
    tier is declared); MainTierError when the variable is unset."""
    if tier is None:
        return None
    return main_from_env(tier.url_env, where)


def main_from_env(url_env: str, where: str) -> Database:
    url = os.environ.get(url_env)
    if not url:
        raise MainTierError(
            f"{where} (main tier): the environment variable {url_env} holding the main "
            "database's URL is not set"
        )
    return Database(url, migrate=False)


@contextmanager
def main_connection(main: Database, where: str, *, autocommit: bool = True):
    try:
        with main.connect(autocommit=autocommit) as conn:
            yield conn
    except DatabaseUnreachable as exc:
        raise MainTierError(
            f"{where} (main tier): the main database at {exc.address} is unreachable "
            f"({exc.reason}); nothing was moved or dropped"
        ) from None


@dataclass(frozen=True)
class MovedToMain:
    dataset: str
    version: str
    rows: int
    database: str  # host, port and name of the main database (never its URL)


@dataclass(frozen=True)
class MovedToCore:
    dataset: str
    version: str
    rows: int


def _parent_definition(conn: psycopg.Connection, dataset: str) -> tuple[list, list[str]]:
    """Core's `ai_curated.<dataset>`: (name, type, not null) of each column, primary key."""
    columns = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""",
        (CURATED_SCHEMA, dataset),
    ).fetchall()
    key = [
        r[0]
        for r in conn.execute(
            """SELECT a.attname
                 FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                WHERE i.indrelid = %s::regclass AND i.indisprimary
                ORDER BY array_position(i.indkey, a.attnum)""",
            (f"{CURATED_SCHEMA}.{dataset}",),
        ).fetchall()
    ]
    return columns, key


def ensure_main_parent(core: psycopg.Connection, main: psycopg.Connection, dataset: str) -> None:
    """`ai_curated.<dataset>` on main, partitioned by version like core's, with core's columns
    (their types as core's catalog formats them), NOT NULL flags and primary key; columns core
    gained since are added. Commits on main."""
    columns, key = _parent_definition(core, dataset)
    if not columns:
        raise FingerprintError(f"ai_curated.{dataset} does not exist in core")
    table = ident(CURATED_SCHEMA, dataset)
    with main.transaction():
        main.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"main.{dataset}",))
        main.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(CURATED_SCHEMA))
        )
        if any(t.startswith("vector") for _, t, _ in columns):
            main.execute("CREATE EXTENSION IF NOT EXISTS vector")
        existing = {
            r[0]
            for r in main.execute(
                """SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0
                      AND NOT a.attisdropped""",
                (CURATED_SCHEMA, dataset),
            ).fetchall()
        }
        if not existing:
            defs: list[sql.Composable] = [
                sql.SQL("{} {}{}").format(
                    sql.Identifier(name), sql.SQL(type_), sql.SQL(" NOT NULL" if notnull else "")
                )
                for name, type_, notnull in columns
            ]
            if key:
                defs.append(
                    sql.SQL("PRIMARY KEY ({})").format(
                        sql.SQL(", ").join(sql.Identifier(k) for k in key)
                    )
                )
            main.execute(
                sql.SQL("CREATE TABLE {} ({}) PARTITION BY LIST (dataset_version)").format(
                    table, sql.SQL(", ").join(defs)
                )
            )
            main.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
            return
        for name, type_, _ in columns:
            if name not in existing:
                main.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        table, sql.Identifier(name), sql.SQL(type_)
                    )
                )


def stream_partition(
    source: psycopg.Connection,
    target: psycopg.Connection,
    dataset: str,
    version: str,
    table: str,
) -> None:
    """Inside `target`'s transaction: `ai_curated.<table>`, a table like the dataset's parent on
    `target`, holding the version's partition of `source`, streamed by binary COPY chunk by
    chunk (the caller counts and digests what arrived)."""
    part = partition_name(dataset, version)
    names = [
        r[0]
        for r in source.execute(
            """SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum""",
            (CURATED_SCHEMA, part),
        ).fetchall()
    ]
    if not names:
        raise FingerprintError(f"{dataset} {version} has no partition to copy")
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    target.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(
            ident(CURATED_SCHEMA, table), ident(CURATED_SCHEMA, dataset)
        )
    )
    target.execute(
        sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident(CURATED_SCHEMA, table))
    )
    with (
        source.cursor() as out_cur,
        target.cursor() as in_cur,
        out_cur.copy(
            sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)").format(
                cols, ident(CURATED_SCHEMA, part)
            )
        ) as out,
        in_cur.copy(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
                ident(CURATED_SCHEMA, table), cols
            )
        ) as into,
    ):
        for chunk in out:
            into.write(chunk)


def _check_digest(conn: psycopg.Connection, reg: Registered, table: str, tier: str) -> int:
    """The version's rows in `ai_curated.<table>` on `conn` against its fingerprint record;
    MainTierError unless row count and content digest match. Returns the rows."""
    assert reg.record is not None
    try:
        got = content_digest(
            conn, reg.dataset, reg.version, reg.record["schema"]["columns"], table=table
        )
    except FingerprintError as exc:
        raise MainTierError(f"{reg.where} ({tier} tier): cannot digest the copy: {exc}") from None
    want = reg.record["rows"]
    if (got.rows, got.digest) != (int(want["count"]), want["content_digest"]):
        raise MainTierError(
            f"{reg.where} ({tier} tier): the copy does not match the version's fingerprint "
            f"{reg.fingerprint} ({got.rows} rows, digest {got.digest[:16]}…; the fingerprint "
            f"records {want['count']} rows, digest {want['content_digest'][:16]}…); nothing "
            "was dropped"
        )
    return got.rows


def _record(conn: psycopg.Connection, reg: Registered, tier: str, main: dict | None) -> None:
    locations = dict(reg.locations)
    if tier == "core":
        locations["postgres"] = f"{CURATED_SCHEMA}.{reg.dataset}"
    else:
        locations.pop("postgres", None)
    if main is None:
        locations.pop(MAIN, None)
    else:
        locations[MAIN] = main
    conn.execute(
        "UPDATE public.datasets SET tier = %s, platform_locations = %s, updated_at = now() "
        "WHERE name = %s AND version = %s AND status = 'curated'",
        (tier, Jsonb(locations), reg.dataset, reg.version),
    )


def _main_location(reg: Registered, main: Database, url_env: str, rows: int) -> dict[str, Any]:
    return {
        "url_env": url_env,
        "database": main.describe(),
        "table": f"{CURATED_SCHEMA}.{reg.dataset}",
        "rows": rows,
        "fingerprint": reg.fingerprint,
    }


def move_to_main(
    db: Database,
    main: Database,
    url_env: str,
    dataset: str,
    version: str,
    *,
    step: Step | None = None,
) -> MovedToMain | None:
    """Move one curated version from core to main (see the module). Returns None when the
    version is no longer in core. `step(name)` is called after `copied` (main's transaction
    still open), `verified` (committed on main) and `dropped` (core partition dropped)."""
    step = step or (lambda _name: None)
    with db.connect(autocommit=True) as lock_conn, version_lock(lock_conn, dataset, version):
        with db.connect() as conn:
            reg = registered(conn, dataset, version)
        if reg.tier != "core":
            return None
        if reg.sensitive:
            raise MainTierError(
                f"{reg.where} (core tier) belongs to a sensitive dataset: the main tier does not "
                "apply its readers' grants and row level security; it stays in core"
            )
        if not reg.fingerprint or not reg.record:
            raise MainTierError(
                f"{reg.where} (core tier) has no fingerprint yet: a version moves only against "
                "its fingerprint (materialize its fingerprint first)"
            )
        with (
            db.connect() as core,
            main_connection(main, reg.where) as mconn,
        ):
            try:
                ensure_main_parent(core, mconn, dataset)
                with mconn.transaction():
                    table = scratch_table(dataset, version)
                    stream_partition(core, mconn, dataset, version, table)
                    step("copied")
                    rows = _check_digest(mconn, reg, table, MAIN)
                    swap_partition(mconn, CURATED_SCHEMA, dataset, version, table)
            except psycopg.Error as exc:
                raise MainTierError(
                    f"{reg.where} (main tier): copying to the main database failed: "
                    f"{type(exc).__name__}; nothing was dropped"
                ) from None
        step("verified")
        with db.connect() as conn, conn.transaction():
            _drop_partition(conn, dataset, version)
            _record(conn, reg, MAIN, _main_location(reg, main, url_env, rows))
        step("dropped")
        return MovedToMain(dataset, version, rows, main.describe())


def main_of(reg: Registered) -> Database:
    """The main database holding a version in the main tier, from the environment variable
    its registry row names."""
    found = reg.locations.get(MAIN)
    if reg.tier != MAIN or not found:
        raise MainTierError(f"{reg.where} is in the {reg.tier} tier, not in the main tier")
    return main_from_env(found["url_env"], reg.where)


def restore_from_main(db: Database, dataset: str, version: str) -> int:
    """Bring a version in the main tier back into core: streamed by binary COPY, its row count
    and content digest checked against the fingerprint in core, swapped in as its partition in
    one transaction with the registry's tier; then its partition on main is dropped. Returns
    the rows restored."""
    with db.connect(autocommit=True) as lock_conn, version_lock(lock_conn, dataset, version):
        with db.connect() as conn:
            reg = registered(conn, dataset, version)
        main = main_of(reg)
        with db.connect() as core, main_connection(main, reg.where) as mconn:
            with core.transaction():
                table = scratch_table(dataset, version)
                try:
                    stream_partition(mconn, core, dataset, version, table)
                except (psycopg.Error, FingerprintError) as exc:
                    raise MainTierError(
                        f"{reg.where} (main tier): reading it from the main database failed: "
                        f"{exc}; nothing was restored"
                    ) from None
                rows = _check_digest(core, reg, table, "core")
                swap_partition(core, CURATED_SCHEMA, dataset, version, table)
                _record(core, reg, "core", None)
            with mconn.transaction():
                _drop_partition(mconn, dataset, version)
        return rows


def restore_archive_to_main(
    db: Database, main: Database, url_env: str, drive: Drive, dataset: str, version: str
) -> int:
    """Load an archived version into main: its archive file's rows checked against the
    fingerprint (row count and content digest, recomputed on main) before they are its
    partition there, then the registry's tier. The archive file stays. Returns the rows."""
    with db.connect(autocommit=True) as lock_conn, version_lock(lock_conn, dataset, version):
        with db.connect() as conn:
            reg = registered(conn, dataset, version)
        _, spool = _archived_file(drive, reg, "nothing was restored")
        with spool, db.connect() as core, main_connection(main, reg.where) as mconn:
            ensure_main_parent(core, mconn, dataset)
            with mconn.transaction():
                table = scratch_table(dataset, version)
                try:
                    load_copy(
                        mconn, dataset, version, reg.columns, spool, table, governance=GOVERNANCE
                    )
                except CopyError as exc:
                    raise MainTierError(
                        f"{reg.where} (archive tier): the archive file {exc}"
                    ) from None
                rows = _check_digest(mconn, reg, table, MAIN)
                swap_partition(mconn, CURATED_SCHEMA, dataset, version, table)
        with db.connect() as conn, conn.transaction():
            _record(conn, reg, MAIN, _main_location(reg, main, url_env, rows))
        return rows


def main_versions(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """The (dataset, version) of every curated version in the main tier."""
    return [
        (name, version)
        for name, version in conn.execute(
            "SELECT name, version FROM public.datasets "
            "WHERE status = 'curated' AND tier = 'main' ORDER BY name, version"
        ).fetchall()
    ]


@dataclass(frozen=True)
class MainUsage:
    database: str
    database_bytes: int
    partitions: dict[tuple[str, str], int]  # (dataset, version) -> bytes on main


def main_usage(db: Database, main: Database) -> MainUsage:
    """The main database's size and the size of each version's partition on it."""
    with db.connect() as conn:
        versions = list(main_versions(conn))
    with main_connection(main, "tiers report") as mconn:
        size = mconn.execute("SELECT pg_database_size(current_database())").fetchone()
        parts = {}
        for dataset, version in versions:
            found = mconn.execute(
                "SELECT pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (CURATED_SCHEMA, partition_name(dataset, version)),
            ).fetchone()
            parts[(dataset, version)] = int(found[0]) if found else 0
    return MainUsage(main.describe(), int(size[0]) if size else 0, parts)
