"""What an auditor types: `verify` (table or JSON, from the database or a proof file, with the
drive re-hashed), `lineage`, `attest pubkey`; exit 0 only when every step passes."""

from __future__ import annotations

import hashlib
import json

import rfc8785
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.provenance import ledger, merkle
from dynamic_assets.provenance.signing import load_signing_key


def env(a) -> dict[str, str]:
    return {
        "DYNAMIC_ASSETS_HOME": str(a.home),
        "DYNAMIC_ASSETS_DRIVE": str(a.drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
        "SUPABASE_DB_URL": a.url,
        "ATTESTATION_PUBLIC_KEY": "",
        "TON_MNEMONIC": "",
        "TON_API_URL": "",
        "DAGSTER_HOME": "",
    }


def run(a, *args, **extra):
    return CliRunner().invoke(main, list(args), env=env(a) | extra)


def test_verify_prints_every_step_and_exits_0(attested):
    result = run(attested, "verify", "market", "2024-06-01", "--source")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for step in ("record", "rows", "content", "files", "source", "proof", "key", "statement",
                 "merkle", "entry", "chain", "anchor", "ton"):  # fmt: skip
        assert f"│ {step} " in out, step
    assert "PASS" in out and "SKIP" in out and "FAIL" not in out
    assert "signed by the local signing key" in out
    assert "VERIFIED datasets/market/2024-06-01" in out


def test_verify_json_and_a_proof_file_with_a_pinned_key(attested):
    pub = run(attested, "attest", "pubkey")
    assert pub.exit_code == 0 and pub.stdout.strip() == attested.key.public_key_hex
    assert "PUBLIC KEY" in run(attested, "attest", "pubkey", "--pem").stdout

    as_json = run(attested, "verify", "corpus", "v1.0", "--json")
    assert as_json.exit_code == 0
    data = json.loads(as_json.stdout)
    assert data["ok"] is True and data["mode"] == "database"
    assert data["subject"] == "datasets/corpus/v1.0" and len(data["fingerprint"]) == 64
    assert [s["name"] for s in data["steps"]][:3] == ["record", "rows", "content"]

    proof = attested.proof_file("corpus", "v1.0")
    key_file = attested.root / "pinned.pub"
    key_file.write_text(pub.stdout)
    # The database is out of reach: a proof file alone is enough.
    offline = run(
        attested, "verify", "--proof", str(proof), "--source", "--pubkey", str(key_file),
        "--json", SUPABASE_DB_URL="postgresql://nobody@127.0.0.1:1/none",
    )  # fmt: skip
    assert offline.exit_code == 0, offline.output
    steps = {s["name"]: s["status"] for s in json.loads(offline.stdout)["steps"]}
    assert steps["source"] == steps["merkle"] == steps["key"] == steps["statement"] == "pass"
    assert steps["rows"] == steps["chain"] == "skip"


def test_verify_exits_1_naming_the_failing_step(attested):
    path = attested.drive_root / "datasets/market/2024-06-01/nasdaq.csv"
    data = bytearray(path.read_bytes())
    data[-2] = ord("7") if data[-2] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    result = run(attested, "verify", "market", "2024-06-01", "--source")
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert (
        "FAILED at step source: datasets/market/2024-06-01/nasdaq.csv: its bytes now hash to"
        in result.stderr
    )
    other = run(attested, "verify", "market", "2024-06-01", "--pubkey", "ab" * 32)
    assert other.exit_code == 1 and "FAILED at step key" in other.stderr
    missing = run(attested, "verify", "weather", "2024-01-01")
    assert missing.exit_code == 2
    assert "dataset 'weather' is not declared: the declared datasets are" in missing.stderr
    unknown = run(attested, "verify", "market", "1999-01-01")
    assert unknown.exit_code == 1 and "not in the datasets registry" in unknown.stderr
    assert run(attested, "verify", "market").exit_code == 2
    assert run(attested, "verify", "market", "2024-06-01", "--pubkey", "nope").exit_code == 2


def test_lineage_shows_the_whole_chain(attested):
    with attested.db.connect() as conn:
        ds_id, fp = conn.execute(
            "SELECT id, fingerprint FROM datasets WHERE name = 'market' AND version = '2024-06-01'"
        ).fetchone()
        conn.execute(
            "INSERT INTO models (name, version, dataset_id, framework, metadata) "
            "VALUES ('pricer', '1', %s, 'sklearn', %s)",
            (ds_id, json.dumps({"data_fingerprint": fp})),
        )
    result = run(attested, "lineage", "market", "2024-06-01")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "datasets/market/2024-06-01/nasdaq.csv" in out and "eTag" in out
    assert "staging rows" in out and "-> curated rows" in out
    assert "stage succeeded" in out and "curate succeeded" in out
    assert f"fingerprint {fp}" in out
    assert "attestation: ledger entry 1" in out and "TON: not anchored" in out
    assert "pricer 1 (sklearn)" in out

    data = json.loads(run(attested, "lineage", "market", "2024-06-01", "--json").stdout)
    files = data["source_files"]
    assert [f["curated_rows"] for f in files] == [f["staging_rows"] for f in files]
    assert sum(f["curated_rows"] for f in files) == data["curated"]["rows"] == 560
    assert all(len(f["sha256"]) == 64 and f["drive_item_id"] for f in files)
    assert data["attestation"]["ledger_seq"] == 1 and data["models"][0]["name"] == "pricer"
    nothing = run(attested, "lineage", "market", "1999-01-01")
    assert (
        nothing.exit_code == 1 and "registered versions: 2024-06-01, 2024-07-01" in nothing.stderr
    )


def test_a_deleted_newest_entry_is_caught_against_a_kept_head(attested, tmp_path):
    """The auditor keeps the signed head published at the last append; a superuser who deletes
    the newest ledger entry leaves a chain that verifies on its own, but not against the head."""
    heads = attested.drive_root / "reports/attestations/heads"
    latest = (heads / "latest.json").read_bytes()
    assert (heads / "2.json").read_bytes() == latest
    head = json.loads(latest)
    assert head["type"] == "dynamic-assets/ledger-head/v1" and head["tree_size"] == 2
    assert json.loads((heads / "1.json").read_text())["tree_size"] == 1

    # The head is checked without this package: RFC 8785 bytes and Ed25519 from `cryptography`.
    body = {k: v for k, v in head.items() if k != "signature"}
    assert head["public_key"] == attested.key.public_key_hex
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(head["public_key"])).verify(
        bytes.fromhex(head["signature"]), rfc8785.dumps(body)
    )
    with attested.db.connect() as conn:
        hashes = [r[0] for r in conn.execute("SELECT entry_hash FROM attestations ORDER BY seq")]
    assert head["head_hash"] == hashes[-1]
    leaf = [hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for h in hashes]
    assert head["tree_root"] == hashlib.sha256(b"\x01" + leaf[0] + leaf[1]).hexdigest()

    kept = tmp_path / "head-2.json"
    kept.write_bytes(latest)
    before = run(attested, "verify", "market", "2024-06-01", "--head", str(kept))
    assert before.exit_code == 0, before.output
    assert "│ head " in before.stdout
    unreadable = run(attested, "verify", "market", "2024-06-01", "--head", str(tmp_path / "no"))
    assert unreadable.exit_code == 2 and "cannot read the head file" in unreadable.output

    attested.tamper("DELETE FROM attestations WHERE seq = 2")
    # Without a head nothing tells: entry 1 and the chain up to it are intact.
    plain = run(attested, "verify", "market", "2024-06-01")
    assert plain.exit_code == 0, plain.output
    held = run(attested, "verify", "market", "2024-06-01", "--head", str(kept))
    assert held.exit_code == 1, held.output
    assert (
        "FAILED at step head: entry 2 missing: the ledger ends at entry 1, the signed head you "
        "hold records 2 entries" in held.stderr
    )
    from_drive = run(attested, "verify", "market", "2024-06-01", "--head", "drive", "--json")
    assert from_drive.exit_code == 1
    steps = {s["name"]: s for s in json.loads(from_drive.stdout)["steps"]}
    assert steps["head"]["status"] == "fail" and "entry 2 missing" in steps["head"]["detail"]

    # A head whose signature does not verify proves nothing and is refused as such.
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(dict(head, tree_size=1)))
    bad = run(attested, "verify", "market", "2024-06-01", "--head", str(forged))
    assert bad.exit_code == 1 and "FAILED at step head: the head's signature does not verify" in (
        bad.stderr
    )


def test_an_entry_rewritten_at_the_heads_size_is_caught(attested, tmp_path, monkeypatch):
    """Entry 2 replaced by one signed with another key: a chain that is consistent on its own
    (each entry checks with the key it names), but its newest hash is not the head's."""
    kept = tmp_path / "head.json"
    kept.write_bytes((attested.drive_root / "reports/attestations/heads/latest.json").read_bytes())
    with attested.db.connect() as conn:
        leaves = conn.execute("SELECT leaves FROM attestations WHERE seq = 2").fetchone()[0]
    attested.tamper("DELETE FROM attestations WHERE seq = 2")
    other = load_signing_key(tmp_path / "intruder")
    with attested.db.connect() as conn, conn.transaction():
        root = merkle.root(ledger.leaf_hashes(leaves)).hex()
        ledger.append(conn, root, leaves, other)
    plain = run(attested, "verify", "market", "2024-06-01")
    assert plain.exit_code == 0, plain.output  # market's own entry 1 is untouched
    held = run(attested, "verify", "market", "2024-06-01", "--head", str(kept))
    assert held.exit_code == 1
    assert "FAILED at step head: entry 2 hashes to" in held.stderr
    assert "not the head's" in held.stderr
