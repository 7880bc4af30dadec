"""`promote` and `rollback` set which curated version is current: what `read_curated` reads
without a version, what the mirrors' `latest` object names, what `status` shows; each move is in
the append-only history (who, when, from, to, why) and a signed ledger entry."""

from __future__ import annotations

import json

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.mirrors.publish import mirror_version
from dynamic_assets.provenance import ledger
from dynamic_assets.provenance.attest import attest_pending
from dynamic_assets.provenance.signing import load_signing_key
from dynamic_assets.read.curated import read_curated
from dynamic_assets_tests.mirrors.conftest import BUCKET
from dynamic_assets_tests.support.staging import curate_and_fingerprint

V1, V2 = "2024-06-01", "2024-07-01"


def _cli(tmp_path, db_url, drive_root, decls, *args):
    config = tmp_path / "declarations.yaml"
    config.write_text(yaml.safe_dump(decls.model_dump(mode="json", exclude_defaults=True)))
    env = {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
        "TON_MNEMONIC": "",
        "DYNAMIC_ASSETS_ACTOR": "ana@example.org",
    }
    return CliRunner().invoke(main, list(args), env=env)


def _latest(s3) -> dict:
    body = s3.client().get_object(Bucket=BUCKET, Key="datasets/market/latest")["Body"].read()
    return json.loads(body)


def _read_dates(db, version: str | None = None) -> set[str]:
    df = read_curated("market", version, columns=["date"], database=db)
    return {str(d)[:10] for d in df["date"]}


def test_promote_and_rollback_move_reads_latest_status_history_and_ledger(
    tmp_path, db, db_url, drive, drive_root, decls, mirror_decls, s3
):
    fp1 = curate_and_fingerprint(db, drive, decls, "market", V1)
    curate_and_fingerprint(db, drive, decls, "market", V2)
    for v in (V1, V2):
        mirror_version(db, mirror_decls, "market", v, "spaces")
    dates = {v: _read_dates(db, v) for v in (V1, V2)}
    assert dates[V1] != dates[V2]
    assert _read_dates(db) == dates[V2]  # nothing promoted: the newest version
    assert _latest(s3)["version"] == V2

    moved = _cli(
        tmp_path, db_url, drive_root, mirror_decls, "promote", "market", V1, "--reason", "V2 bad"
    )
    assert moved.exit_code == 0, moved.output
    assert f"market: current version {V1} (was {V2})" in moved.output
    assert _read_dates(db) == dates[V1]
    assert _latest(s3)["version"] == V1
    with db.connect() as conn:
        placed = conn.execute(
            "SELECT platform_locations -> 'spaces' ->> 'url' FROM datasets "
            "WHERE name = 'market' AND version = %s",
            (V1,),
        ).fetchone()[0]
    assert _latest(s3)["object"] == placed

    status = _cli(tmp_path, db_url, drive_root, mirror_decls, "status", "--json")
    market = next(h for h in json.loads(status.output) if h["dataset"] == "market")
    assert (market["latest_version"], market["current_version"]) == (V2, V1)

    back = _cli(tmp_path, db_url, drive_root, mirror_decls, "rollback", "market")
    assert back.exit_code == 0, back.output
    assert f"market: current version {V2} (was {V1}), rollback by ana@example.org" in back.output
    assert _read_dates(db) == dates[V2]
    assert _latest(s3)["version"] == V2

    again = _cli(tmp_path, db_url, drive_root, mirror_decls, "rollback", "market")
    assert again.exit_code == 2
    assert "no version was current before" in again.output

    with db.connect() as conn:
        moves = conn.execute(
            "SELECT action, from_version, to_version, actor, reason, moved_at IS NOT NULL, "
            "ledger_seq FROM dataset_pointer_moves WHERE dataset = 'market' ORDER BY id"
        ).fetchall()
        chain = ledger.entries(conn)
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM dataset_pointer_moves")
    assert [m[:6] for m in moves] == [
        ("promote", V2, V1, "ana@example.org", "V2 bad", True),
        ("rollback", V1, V2, "ana@example.org", None, True),
    ]
    # Each move is a signed ledger entry; the chain still verifies.
    assert ledger.chain_problems(chain) == []
    first = next(e for e in chain if e.seq == moves[0][6])
    assert first.leaves == [
        {
            "dataset": "market",
            "version": V1,
            "fingerprint": fp1,
            "pointer_move": {
                "action": "promote",
                "from": V2,
                "to": V1,
                "actor": "ana@example.org",
                "reason": "V2 bad",
            },
        }
    ]
    # The auditor's check of a version walks the whole chain, pointer entries included.
    key = load_signing_key(tmp_path / "home")
    assert key is not None and key.public_key_hex == first.public_key
    with db.connect() as conn:
        assert attest_pending(conn, key) is not None
    verified = _cli(tmp_path, db_url, drive_root, mirror_decls, "verify", "market", V1)
    assert verified.exit_code == 0, verified.output


def test_promoting_a_version_that_is_not_curated_is_refused_listing_curated_ones(
    tmp_path, db, db_url, drive, drive_root, decls, mirror_decls
):
    curate_and_fingerprint(db, drive, decls, "market", V1)
    refused = _cli(tmp_path, db_url, drive_root, mirror_decls, "promote", "market", "2024-08-01")
    assert refused.exit_code == 2
    out = " ".join(refused.output.split())
    assert "market 2024-08-01 is not a curated version" in out
    assert f"Curated and fingerprinted versions: {V1}" in out
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM dataset_pointer_moves").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM dataset_pointers").fetchone()[0] == 0
