"""Physical table names and DDL shared by staging and curated tables.

Each dataset has a parent table partitioned by `dataset_version` in `ai_raw` and in
`ai_curated`; each version is one partition, replaced by building a new table and swapping it in
one transaction so that readers see the old version or the new one, never a mix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from dynamic_assets.declarations.names import table_suffix

RAW_SCHEMA = "ai_raw"
CURATED_SCHEMA = "ai_curated"
# JSON and JSON Lines rows are staged whole, as one jsonb column of this name.
RECORD_COLUMN = "_record"


def partition_name(dataset: str, version: str) -> str:
    return f"{dataset}__{table_suffix(version)}"


def build_name(dataset: str, version: str) -> str:
    return f"{dataset}__b_{table_suffix(version, uuid.uuid4().hex)}"


def ident(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def table_columns(conn: psycopg.Connection, schema: str, name: str) -> dict[str, str]:
    """Column name -> formatted type of an existing table, in order; empty if it does not exist."""
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a
             JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""",
        (schema, name),
    ).fetchall()
    return dict(rows)


def partition_exists(conn: psycopg.Connection, schema: str, name: str) -> bool:
    return bool(
        conn.execute(
            """SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = %s""",
            (schema, name),
        ).fetchone()
    )


def dataset_lock(conn: psycopg.Connection, schema: str, dataset: str) -> None:
    """Serialise DDL on one dataset's tables (inside the current transaction)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}.{dataset}",))


def version_check(built: str, version: str) -> sql.Composed:
    """The CHECK constraint of the table `built` that lets ATTACH as the partition of `version`
    skip scanning it; given to CREATE TABLE, it is checked row by row as the rows go in."""
    return sql.SQL(
        "CONSTRAINT {} CHECK (dataset_version IS NOT NULL AND dataset_version = {})"
    ).format(sql.Identifier(f"{built}_v"), sql.Literal(version))


def swap_partition(
    conn: psycopg.Connection,
    schema: str,
    dataset: str,
    version: str,
    built: str,
    *,
    checked: bool = False,
) -> None:
    """Make the table `built` the partition of `version`, replacing the previous one.

    Runs inside the caller's transaction: until it commits, readers see the old partition.
    The CHECK constraint (`version_check`) lets ATTACH skip scanning the new table; it is added
    here (a scan of the table) unless `checked` says the table was created with it.
    """
    part = partition_name(dataset, version)
    if not checked:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD {}").format(
                ident(schema, built), version_check(built, version)
            )
        )
    dataset_lock(conn, schema, dataset)
    if partition_exists(conn, schema, part):
        conn.execute(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                ident(schema, dataset), ident(schema, part)
            )
        )
        conn.execute(sql.SQL("DROP TABLE {}").format(ident(schema, part)))
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(schema, built), sql.Identifier(part))
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
            ident(schema, dataset), ident(schema, part), sql.Literal(version)
        )
    )


# The advisory lock of one dataset version. `VERSION_LOCK`: one step at a time stages, checks,
# curates or fingerprints it. `RUN_LOCK`: one `dynamic-assets run` at a time brings it to
# curated. Two kinds, so that a run holding the second takes the first for each step.
VERSION_LOCK = "dynamic_assets.version"
RUN_LOCK = "dynamic_assets.run"


def _lock_name(kind: str, dataset: str, version: str) -> str:
    return f"{kind}|{dataset}|{version}"


@contextmanager
def version_lock(conn: psycopg.Connection, dataset: str, version: str) -> Iterator[None]:
    """Hold the step lock of one dataset version for the block, waiting for it if another
    session holds it. `conn` is an autocommit connection kept open for the block: the lock
    belongs to its session, so Postgres releases it if the process dies."""
    name = _lock_name(VERSION_LOCK, dataset, version)
    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))


def try_run_lock(conn: psycopg.Connection, dataset: str, version: str, holder: str) -> bool:
    """Take the run lock of one dataset version for the session of `conn` (an autocommit
    connection kept open while the run lasts), unless another session holds it. The session is
    named `holder` (its `application_name`), which `run_lock_holder` reads back."""
    conn.execute("SELECT set_config('application_name', %s, false)", (holder,))
    row = conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
        (_lock_name(RUN_LOCK, dataset, version),),
    ).fetchone()
    return bool(row and row[0])


def run_lock_holder(conn: psycopg.Connection, dataset: str, version: str) -> str | None:
    """The `holder` name of the session holding the run lock of one dataset version, if any.

    A 64-bit advisory key shows in `pg_locks` as its high half in `classid`, its low half in
    `objid`, with `objsubid` 1."""
    row = conn.execute(
        """SELECT a.application_name
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(%s, 0)""",
        (_lock_name(RUN_LOCK, dataset, version),),
    ).fetchone()
    return row[0] if row else None
