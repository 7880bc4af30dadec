"""The demo datasets curated in a template database, built once per test process and cloned per
test (`CREATE DATABASE ... TEMPLATE`), for tests that need curated tables but not the runs."""

from __future__ import annotations

from pathlib import Path

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.demo.seed import SEED_VERSIONS, seed_drive
from dynamic_assets.drive import LocalDrive
from dynamic_assets_tests.support.postgres import create_database
from dynamic_assets_tests.support.staging import curate_version

_templates: dict[tuple[str, str], str] = {}


def curate_all(db: Database, drive: LocalDrive, decls: Declarations) -> None:
    """Stage and curate every demo version, as the runs do (without Dagster)."""
    for name, versions in SEED_VERSIONS.items():
        for version in versions:
            curate_version(db, drive, decls, name, version)


def curated_demo_database(pg_server, root: Path, decls: Declarations) -> str:
    """A fresh database holding the curated demo (a clone of a template built once)."""
    key = (
        pg_server.get_uri(),
        repr(sorted((d.name, d.sensitivity, tuple(d.readers)) for d in decls.datasets)),
    )
    template = _templates.get(key)
    if template is None:
        template = create_database(pg_server, "tpl_sec")
        drive_root = root / f"drive_{template}"
        seed_drive(drive_root)
        curate_all(Database(pg_server.get_uri(template)), LocalDrive(drive_root), decls)
        _templates[key] = template
    return pg_server.get_uri(create_database(pg_server, template=template))
