"""Deletion by policy, as an auditor sees it: the version gone from core and from the archive,
the registry row showing it deleted (by which policy, when), a signed ledger entry naming it and
its fingerprint, never a version under legal hold; a process killed mid-deletion leaves it
recorded deleted, and the next pass finishes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from dynamic_assets.db.tables import CURATED_SCHEMA, partition_exists, partition_name
from dynamic_assets.declarations.storage import Lifecycle
from dynamic_assets.lifecycle.archive import archive_version
from dynamic_assets.lifecycle.run import run_pass
from dynamic_assets.provenance.signing import SigningKey
from dynamic_assets.read.curated import read_curated
from dynamic_assets.read.frames import DatasetNotFound

OLD = "2024-06-01"
NEW = "2024-07-01"


@pytest.fixture
def key():
    return SigningKey(Ed25519PrivateKey.generate(), "test")


def _age(db, dataset, version, days):
    with db.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - make_interval(days => %s) "
            "WHERE name = %s AND version = %s",
            (days, dataset, version),
        )


def _row(db, dataset, version):
    with db.connect() as conn:
        return conn.execute(
            "SELECT status, deleted_at, deletion_policy, deletion_ledger_seq, platform_locations, "
            "fingerprint FROM public.datasets WHERE name = %s AND version = %s",
            (dataset, version),
        ).fetchone()


def _state(db, dataset, version):
    with db.connect() as conn:
        return conn.execute(
            "SELECT state, detail FROM public.version_states WHERE dataset = %s AND version = %s",
            (dataset, version),
        ).fetchone()


def _in_core(db, dataset, version):
    with db.connect() as conn:
        return partition_exists(conn, CURATED_SCHEMA, partition_name(dataset, version))


def _entries(db):
    with db.connect() as conn:
        return conn.execute(
            "SELECT seq, prev_hash, entry_hash, merkle_root, leaves, created_at, public_key, "
            "signature FROM public.attestations ORDER BY seq"
        ).fetchall()


def _deletion_leaves(db):
    return [(e[0], leaf) for e in _entries(db) for leaf in e[4] if "deletion" in leaf]


def _check_signed_independently(db, seq):
    """The entry's hash recomputed with the standard library's JSON (RFC 8785 coincides with
    sorted compact JSON for these values) and its Ed25519 signature checked with cryptography."""
    for s, prev, entry_hash, root, leaves, created, public_key, signature in _entries(db):
        if s != seq:
            continue
        body = {
            "type": "dynamic-assets/ledger-entry/v1",
            "seq": s,
            "prev_hash": prev,
            "merkle_root": root,
            "leaves": leaves,
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "public_key": public_key,
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(text.encode()).hexdigest() == entry_hash
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        pub.verify(bytes.fromhex(signature), bytes.fromhex(entry_hash))  # raises if forged
        return
    raise AssertionError(f"no ledger entry {seq}")


def test_version_past_delete_after_days_is_deleted_from_every_tier_and_signed_in_the_ledger(
    curated, drive, drive_root, tier_decls, key
):
    archived = archive_version(curated, drive, "archive", "market", OLD)
    assert (drive_root / archived.path).exists()
    fingerprint = _row(curated, "market", OLD)[5]
    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, delete_after_days=30)
    _age(curated, "market", OLD, 40)

    dry = run_pass(curated, drive, tier_decls, dry_run=True, key=key)
    assert [(d.dataset, d.version, d.policy, d.tiers) for d in dry.deletions.planned.due] == [
        ("market", OLD, "delete_after_days", ["archive"])
    ]
    assert _row(curated, "market", OLD)[0] == "curated" and (drive_root / archived.path).exists()

    done = run_pass(curated, drive, tier_decls, key=key)
    assert done.failed == []
    assert [(d.version, d.tiers) for d in done.deletions.deleted] == [(OLD, ["archive"])]
    assert not (drive_root / archived.path).exists()
    status, deleted_at, policy, seq, locations, _ = _row(curated, "market", OLD)
    assert (status, policy) == ("deleted", "delete_after_days")
    assert deleted_at is not None and "archive" not in locations and "postgres" not in locations
    state, detail = _state(curated, "market", OLD)
    assert state == "deleted" and "delete_after_days" in detail and str(seq) in detail
    [(entry_seq, leaf)] = _deletion_leaves(curated)
    assert entry_seq == seq
    assert leaf["dataset"] == "market" and leaf["version"] == OLD
    assert leaf["fingerprint"] == fingerprint
    assert leaf["deletion"]["policy"] == "delete_after_days"
    assert leaf["deletion"]["tiers"] == ["archive"]
    _check_signed_independently(curated, seq)
    with pytest.raises(DatasetNotFound, match="no curated version '2024-06-01'"):
        read_curated("market", version=OLD, database=curated, drive=drive)
    # The newer version was curated recently: kept, in core.
    assert _row(curated, "market", NEW)[0] == "curated" and _in_core(curated, "market", NEW)


def test_version_whose_rows_retention_passed_is_deleted_from_core(curated, drive, tier_decls, key):
    with curated.connect() as conn:
        conn.execute(
            "UPDATE ai_curated.market SET _retain_until = DATE '2020-01-01' "
            "WHERE dataset_version = %s",
            (NEW,),
        )
    done = run_pass(curated, drive, tier_decls, key=key)
    assert [(d.version, d.policy, d.tiers) for d in done.deletions.deleted] == [
        (NEW, "_retain_until", ["core"])
    ]
    assert not _in_core(curated, "market", NEW)
    assert _row(curated, "market", NEW)[0] == "deleted"
    assert _row(curated, "market", OLD)[0] == "curated" and _in_core(curated, "market", OLD)


def test_version_under_legal_hold_survives_a_pass_with_its_deadline_past(
    curated, drive, tier_decls, key
):
    before = read_curated("market", version=OLD, as_arrow=True, database=curated)
    tier_decls.dataset("market").lifecycle = Lifecycle(delete_after_days=30, legal_hold=True)
    _age(curated, "market", OLD, 400)
    with curated.connect() as conn:
        conn.execute(
            "UPDATE ai_curated.market SET _retain_until = DATE '2020-01-01' "
            "WHERE dataset_version = %s",
            (OLD,),
        )
    dry = run_pass(curated, drive, tier_decls, dry_run=True, key=key)
    assert any(
        line.startswith(f"market {OLD}: kept under legal hold")
        for line in dry.deletions.planned.held
    )
    done = run_pass(curated, drive, tier_decls, key=key)
    assert done.deletions.deleted == [] and done.failed == []
    assert _row(curated, "market", OLD)[0] == "curated" and _in_core(curated, "market", OLD)
    after = read_curated("market", version=OLD, as_arrow=True, database=curated)
    assert after.num_rows == before.num_rows
    assert _deletion_leaves(curated) == []


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from dynamic_assets.db import Database
    from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
    from dynamic_assets.declarations.storage import Lifecycle
    from dynamic_assets.drive import LocalDrive
    from dynamic_assets.lifecycle.deletion import deletion_pass
    from dynamic_assets.provenance.signing import SigningKey

    url, root, at = sys.argv[1:]
    decls = load_declarations(DEMO_CONFIG)
    decls.dataset("embeddings").sensitivity = "internal"
    decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, delete_after_days=30)

    def step(name):
        if name == at:
            os.kill(os.getpid(), signal.SIGKILL)

    key = SigningKey(Ed25519PrivateKey.generate(), "test")
    deletion_pass(Database(url), LocalDrive(root), decls, key, step=step)
    """
)


@pytest.mark.parametrize("at", ["recorded", "removed:core"])
def test_killed_deletion_stays_recorded_and_the_next_pass_finishes(
    curated, db_url, drive, drive_root, tier_decls, key, at
):
    archived = archive_version(curated, drive, "archive", "market", OLD)
    restored_file = drive_root / archived.path
    # The version back in core as well as in the archive: two tiers hold it.
    from dynamic_assets.lifecycle.archive import restore_version

    restore_version(curated, drive, "market", OLD)
    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET tier = 'core', "
            "platform_locations = platform_locations || jsonb_build_object('archive', %s::jsonb) "
            "WHERE name = 'market' AND version = %s",
            (json.dumps(_archive_location(archived, _row(curated, "market", OLD)[5])), OLD),
        )
    _age(curated, "market", OLD, 40)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, db_url, str(drive_root), at],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    status, _, policy, seq, locations, _ = _row(curated, "market", OLD)
    assert (status, policy) == ("deleted", "delete_after_days")
    assert "archive" in locations and restored_file.exists()  # not removed yet, and recorded
    assert _in_core(curated, "market", OLD) == (at == "recorded")
    assert _state(curated, "market", OLD)[0] == "deleted"
    from dynamic_assets.lifecycle.deletion import held_by_no_tier

    assert ("market", OLD) not in held_by_no_tier(curated)

    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, delete_after_days=30)
    done = run_pass(curated, drive, tier_decls, key=key)
    assert done.failed == []
    assert not restored_file.exists() and not _in_core(curated, "market", OLD)
    assert "archive" not in _row(curated, "market", OLD)[4]
    assert [s for s, _ in _deletion_leaves(curated)] == [seq]  # one ledger entry, not two
    assert ("market", OLD) in held_by_no_tier(curated)


def _archive_location(archived, fingerprint):
    return {
        "path": archived.path,
        "sha256": archived.sha256,
        "size_bytes": archived.size_bytes,
        "rows": archived.rows,
        "fingerprint": fingerprint,
    }
