"""The demo datasets curated in a template database, built once per test process and cloned per
test (`CREATE DATABASE ... TEMPLATE`), for tests that need curated tables but not the runs."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from dynamic_assets.datasets import pipeline
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.demo.seed import SEED_VERSIONS, seed_drive
from dynamic_assets.drive import LocalDrive

_templates: dict[tuple[str, str], str] = {}


def curate_all(db: Database, drive: LocalDrive, decls: Declarations) -> None:
    """Stage and curate every demo version, as the runs do (without Dagster)."""
    for name, versions in SEED_VERSIONS.items():
        ds = decls.dataset(name)
        for version in versions:
            pipeline.stage(db, drive, decls, ds, version)
            pipeline.curate(db, drive.kind, ds, version)


def curated_demo_database(pg_server, root: Path, decls: Declarations) -> str:
    """A fresh database holding the curated demo (a clone of a template built once)."""
    key = (
        pg_server.get_uri(),
        repr(sorted((d.name, d.sensitivity, tuple(d.readers)) for d in decls.datasets)),
    )
    template = _templates.get(key)
    admin = pg_server.get_uri()
    if template is None:
        template = f"tpl_sec_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{template}"')
        drive_root = root / f"drive_{template}"
        seed_drive(drive_root)
        curate_all(Database(pg_server.get_uri(template)), LocalDrive(drive_root), decls)
        _templates[key] = template
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return pg_server.get_uri(name)
