"""An attested demo: every demo version staged, curated, fingerprinted and attested (market and
corpus in ledger entry 1, embeddings in entry 2), built once per test session and cloned per test
(`CREATE DATABASE ... TEMPLATE`, a copy of the drive and home folders), so each test can tamper
with its own copy. The signed ledger head is published after each entry, as the attestation
asset does (`reports/attestations/heads/1.json`, `2.json`, `latest.json`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import DEMO_CONFIG, Declarations, load_declarations
from dynamic_assets.demo.seed import SEED_VERSIONS, seed_drive
from dynamic_assets.drive import LocalDrive
from dynamic_assets.provenance import attest
from dynamic_assets.provenance.signing import SigningKey, load_signing_key
from dynamic_assets_tests.support.postgres import create_database
from dynamic_assets_tests.support.staging import curate_and_fingerprint

BATCHES = [["market", "corpus"], ["embeddings"]]


@dataclass
class Attested:
    db: Database
    url: str
    root: Path
    decls: Declarations

    @property
    def drive_root(self) -> Path:
        return self.root / "drive"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def drive(self) -> LocalDrive:
        return LocalDrive(self.drive_root)

    @property
    def key(self) -> SigningKey:
        key = load_signing_key(self.home, create=False)
        assert key is not None
        return key

    def proof_file(self, dataset: str, version: str) -> Path:
        with self.db.connect() as conn:
            path = conn.execute(
                "SELECT drive_path FROM dataset_proofs WHERE dataset = %s AND version = %s",
                (dataset, version),
            ).fetchone()[0]
        return self.drive_root / path

    def tamper(self, sql: str, params=()) -> None:
        """Edit as a superuser who switches the ledger's triggers off."""
        with self.db.connect() as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute(sql, params)


@pytest.fixture(scope="session")
def attested_template(pg_server, tmp_path_factory):
    name = create_database(pg_server, "tpl")
    root = tmp_path_factory.mktemp("attested")
    seed_drive(root / "drive")
    db = Database(pg_server.get_uri(name))
    drive = LocalDrive(root / "drive")
    decls = load_declarations(DEMO_CONFIG)
    key = load_signing_key(root / "home")
    for group in BATCHES:
        for ds_name in group:
            for version in SEED_VERSIONS[ds_name]:
                curate_and_fingerprint(db, drive, decls, ds_name, version)
        with db.connect(autocommit=True) as conn:
            batch = attest.attest_pending(conn, key)
            for doc in batch.proofs:
                attest.write_proof_file(conn, drive, doc)
            attest.publish_head(conn, drive, key)
    return name, root  # the test server's folder (and this database) go at the session's end


@pytest.fixture
def attested(pg_server, attested_template, tmp_path) -> Attested:
    name, root = attested_template
    clone = create_database(pg_server, template=name)
    copy = tmp_path / "attested"
    shutil.copytree(root, copy)
    url = pg_server.get_uri(clone)
    return Attested(Database(url), url, copy, load_declarations(DEMO_CONFIG))
