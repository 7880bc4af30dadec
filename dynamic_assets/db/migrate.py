"""Versioned SQL migrations, applied in order, once, under an advisory lock.

Each file in `migrations/` is `NNNN_name.sql`. Applied versions are recorded with a checksum in
`dai_schema_migrations`; a changed file that was already applied is an error, never re-run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
LOCK_KEY = 0x6461695F6D6967  # "dai_mig"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


class MigrationError(RuntimeError):
    pass


def available_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        m = re.match(r"^(\d{4})_(\w+)\.sql$", path.name)
        if not m:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number in {folder}")
    return found


def apply_migrations(conn: psycopg.Connection, folder: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply every migration not yet applied; return the versions applied now."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS public.dai_schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done: dict[int, str] = dict(
            conn.execute("SELECT version, checksum FROM public.dai_schema_migrations").fetchall()
        )
        for mig in available_migrations(folder):
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.version:04d}_{mig.name} was changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            conn.execute(mig.sql)
            conn.execute(
                "INSERT INTO public.dai_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (mig.version, mig.name, mig.checksum),
            )
            applied_now.append(mig.version)
    return applied_now
