"""What an auditor types: `verify` (table or JSON, from the database or a proof file, with the
drive re-hashed), `lineage`, `attest pubkey`; exit 0 only when every step passes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG


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
    assert missing.exit_code == 1 and "not in the datasets registry" in missing.stderr
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
