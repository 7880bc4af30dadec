"""What a user sees of each mirror: `status` names, per version and platform, whether the mirror
holds the version, is missing it, holds other bytes than were placed, or failed and why; one
platform's failure does not stop the run or the other platforms. Each object placed is one signed
ledger entry, written once."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.mirrors.publish import mirror_version
from dynamic_assets.provenance import ledger
from dynamic_assets.provenance.signing import load_signing_key
from dynamic_assets_tests.mirrors.conftest import BUCKET
from dynamic_assets_tests.support.staging import curate_and_fingerprint

V = "2024-06-01"


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
    }
    return CliRunner().invoke(main, list(args), env=env)


def _with_broken_platform(mirror_decls):
    raw = mirror_decls.model_dump(mode="json", exclude_defaults=True)
    raw["platforms"]["backup"] = dict(raw["platforms"]["spaces"], bucket="no-such-bucket")
    return type(mirror_decls).model_validate(raw)


def _mirror_rows(output: str) -> dict[tuple[str, str], dict]:
    report = json.loads(output)
    return {
        (m["version"], m["platform"]): m
        for h in report
        if h["dataset"] == "market"
        for m in h["mirrors"]
    }


def test_a_failing_platform_is_named_the_others_go_on_and_status_shows_each_state(
    tmp_path, db, db_url, drive_root, mirror_decls, s3, monkeypatch
):
    monkeypatch.setenv("BACKUP_ACCESS_KEY_ID", "backup-key")
    monkeypatch.setenv("BACKUP_SECRET_ACCESS_KEY", "backup-secret-value")
    decls = _with_broken_platform(mirror_decls)
    run = _cli(tmp_path, db_url, drive_root, decls, "run", "--dataset", "market", "--no-train")
    assert run.exit_code == 1, run.output
    out = " ".join(run.output.split())
    with db.connect() as conn:
        curated = [
            r[0]
            for r in conn.execute(
                "SELECT version FROM datasets WHERE name = 'market' AND status = 'curated' "
                "ORDER BY version"
            ).fetchall()
        ]
    assert len(curated) >= 2
    for version in curated:
        assert f"mirror backup: market {version}" in out and "bucket does not exist" in out
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted({k.split("/")[2] for k in keys if k.endswith(".parquet")}) == curated
    with db.connect() as conn:
        ledgered = conn.execute(
            "SELECT o.version FROM mirror_objects o JOIN attestations a ON a.seq = o.ledger_seq "
            "WHERE o.platform = 'spaces' ORDER BY o.version"
        ).fetchall()
    assert [r[0] for r in ledgered] == curated
    verified = _cli(tmp_path, db_url, drive_root, decls, "verify", "market", curated[0])
    assert verified.exit_code == 0, verified.output

    status = _cli(tmp_path, db_url, drive_root, decls, "status", "--json")
    rows = _mirror_rows(status.output)
    assert status.exit_code == 1
    for version in curated:
        assert rows[(version, "spaces")]["state"] == "mirrored"
        assert rows[(version, "backup")]["state"] == "failed"
        assert "bucket does not exist" in rows[(version, "backup")]["detail"]
    assert "backup-secret-value" not in status.output

    # Behind our back: one object rewritten (its SHA-256 metadata kept), another deleted.
    client = s3.client()
    changed, gone = (
        next(k for k in keys if k.endswith(".parquet") and f"/{v}/" in k) for v in curated[:2]
    )
    sha = client.head_object(Bucket=BUCKET, Key=changed)["Metadata"]["sha256"]
    client.put_object(Bucket=BUCKET, Key=changed, Body=b"other bytes", Metadata={"sha256": sha})
    client.delete_object(Bucket=BUCKET, Key=gone)
    table = _cli(tmp_path, db_url, drive_root, decls, "status")
    text = " ".join(table.output.split())
    assert table.exit_code == 1
    assert f"market {curated[0]} spaces changed" in text
    assert f"market {curated[1]} spaces missing" in text
    assert f"market {curated[0]} backup failed" in text
    rows = _mirror_rows(_cli(tmp_path, db_url, drive_root, decls, "status", "--json").output)
    assert rows[(curated[0], "spaces")]["state"] == "changed"
    assert rows[(curated[1], "spaces")]["state"] == "missing"


def test_each_object_placed_is_one_ledger_entry_written_once(
    tmp_path, db, drive, decls, mirror_decls, s3
):
    fp = curate_and_fingerprint(db, drive, decls, "market", V)
    key = load_signing_key(tmp_path / "keys")
    with db.connect() as conn:
        before = len(ledger.entries(conn))
    done = mirror_version(db, mirror_decls, "market", V, "spaces", signer=key)
    with db.connect() as conn:
        chain = ledger.entries(conn)
        rows = conn.execute(
            "SELECT platform, object_key, sha256, size_bytes, fingerprint, ledger_seq "
            "FROM mirror_objects"
        ).fetchall()
    assert len(chain) == before + 1
    assert chain[-1].leaves == [
        {
            "dataset": "market",
            "version": V,
            "fingerprint": fp,
            "mirror": {
                "platform": "spaces",
                "key": done.placed.key,
                "sha256": done.placed.sha256,
                "size_bytes": done.placed.size_bytes,
            },
        }
    ]
    assert rows == [
        ("spaces", done.placed.key, done.placed.sha256, done.placed.size_bytes, fp, chain[-1].seq)
    ]
    assert ledger.chain_problems(chain) == []

    # A no-op mirror, and a mirror rebuilt after its objects were deleted: no new entry.
    mirror_version(db, mirror_decls, "market", V, "spaces", signer=key)
    client = s3.client()
    for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]:
        client.delete_object(Bucket=BUCKET, Key=o["Key"])
    assert mirror_version(db, mirror_decls, "market", V, "spaces", signer=key).placed.uploaded
    with db.connect() as conn:
        assert len(ledger.entries(conn)) == before + 1
        assert conn.execute("SELECT count(*) FROM mirror_objects").fetchone()[0] == 1
