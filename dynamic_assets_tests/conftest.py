"""Shared fixtures: a real embedded PostgreSQL (one server per test process, one database per
test), a seeded demo drive, and the code location's definitions wired to both."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.demo.seed import seed_drive
from dynamic_assets.drive import LocalDrive
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.postgres import create_database, embedded_server


@pytest.fixture(autouse=True)
def _no_dagster_state_storage_from_an_earlier_test():
    """Each test starts without a current Dagster defs-state storage: one left current by an
    earlier test in the same process refers to an instance that may be gone by then ("Attempted
    to resolve undefined DagsterInstance weakref" when definitions load)."""
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        yield


@pytest.fixture(scope="session")
def pg_server():
    """One embedded PostgreSQL per test process, in a folder its server user can reach."""
    with embedded_server("dai-test-pg-") as server:
        yield server


@pytest.fixture
def db_url(pg_server) -> str:
    return pg_server.get_uri(create_database(pg_server))


@pytest.fixture
def db(db_url) -> Database:
    return Database(db_url)


@pytest.fixture
def decls():
    return load_declarations(DEMO_CONFIG)


@pytest.fixture
def drive_root(tmp_path) -> Path:
    root = tmp_path / "drive"
    seed_drive(root)
    return root


@pytest.fixture
def drive(drive_root) -> LocalDrive:
    return LocalDrive(drive_root)


@pytest.fixture
def settings(tmp_path, drive_root, db_url, monkeypatch) -> Settings:
    monkeypatch.setenv("SUPABASE_DB_URL", db_url)
    return Settings(
        home=tmp_path / "home", drive_root=drive_root, config_path=DEMO_CONFIG, db_url_set=True
    )


@pytest.fixture
def defs(settings, decls) -> dg.Definitions:
    from dynamic_assets.definitions import build_defs

    return build_defs(settings, decls)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
