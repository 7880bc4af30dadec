"""The provenance assets end to end on the demo drive: the sensor's runs go all the way to
attested; re-materializing identical files leaves the attestation fresh while a real change
makes it stale; and with a TON wallet configured the root is anchored through toncenter."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver
from pytoniq_core.crypto.keys import mnemonic_new

from dynamic_assets.definitions import build_defs
from dynamic_assets.defs.datasets.assets import curated_key, manifest_key, raw_key
from dynamic_assets.defs.provenance.keys import attestation_key, fingerprint_key
from dynamic_assets.demo.seed import SEED_VERSIONS
from dynamic_assets.drive import LocalDrive
from dynamic_assets.provenance import ton
from dynamic_assets.provenance.lineage import lineage
from dynamic_assets.provenance.signing import load_signing_key
from dynamic_assets.provenance.verify import verify_version
from dynamic_assets.settings import ProvenanceSettings
from dynamic_assets_tests.support.drive_files import edit_cell
from dynamic_assets_tests.support.runs import data_version, run_all, run_version, tick
from dynamic_assets_tests.support.runs import latest_metadata as latest_meta
from dynamic_assets_tests.support.toncenter_server import serve

MARKET = "2024-06-01"


def run_market(defs, instance, selection=None):
    return run_version(defs, instance, "market", MARKET, selection=selection)


def test_provenance_assets_follow_curated_in_every_curate_job(defs, decls):
    graph = defs.get_repository_def().asset_graph
    for ds in decls.datasets:
        assert graph.get(fingerprint_key(ds.name)).parent_keys == {curated_key(ds.name)}
        assert graph.get(attestation_key(ds.name)).parent_keys == {fingerprint_key(ds.name)}
        assert graph.get(fingerprint_key(ds.name)).code_version == "v1"
        job = defs.get_job_def(f"curate_{ds.name}")
        assert {fingerprint_key(ds.name), attestation_key(ds.name)} <= set(
            job.asset_layer.selected_asset_keys
        )
        ingest = defs.get_job_def(f"ingest_{ds.name}")
        assert not {fingerprint_key(ds.name), attestation_key(ds.name)} & set(
            ingest.asset_layer.selected_asset_keys
        )
    resource = defs.resources["attestation"]
    assert resource.ton_mnemonic is None and resource.signing_key is None  # nothing set here


def test_the_sensors_runs_go_all_the_way_to_attested(defs, instance, db, drive_root, settings):
    """One version of each demo dataset (CSV, JSON, Parquet) through the sensor's runs; every
    version of the demo is attested and verified in test_mutations.py."""
    found = tick(defs, instance)
    latest = {ds: versions[-1] for ds, versions in SEED_VERSIONS.items()}
    requests = [r for r in found.run_requests if latest[r.tags["dataset"]] == r.partition_key]
    outcomes = run_all(
        defs,
        instance,
        dg.SensorResult(
            run_requests=requests, dynamic_partitions_requests=found.dynamic_partitions_requests
        ),
    )
    assert len(outcomes) == 3 and all(r.success for r in outcomes.values())
    key = load_signing_key(settings.home, create=False)
    for ds, version in latest.items():
        fp_meta = latest_meta(instance, fingerprint_key(ds), version)
        at_meta = latest_meta(instance, attestation_key(ds), version)
        assert fp_meta["fingerprint"].value == at_meta["fingerprint"].value
        assert at_meta["anchoring"].value.startswith("off: set TON_MNEMONIC")
        assert (drive_root / at_meta["proof_file"].value).is_file()
        assert key.public_key_hex in at_meta["signing_key"].value
        report = verify_version(
            db, ds, version, drive=LocalDrive(drive_root), pinned_key=key.public_key_hex
        )
        assert report.ok, report.to_dict()
    with db.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM datasets WHERE fingerprint IS NULL"
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM dataset_proofs").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM attestations").fetchone() == (3,)
    heads = drive_root / "reports/attestations/heads"
    assert sorted(p.name for p in heads.iterdir()) == ["1.json", "2.json", "3.json", "latest.json"]
    head = json.loads((heads / "latest.json").read_text())
    assert (head["tree_size"], head["public_key"]) == (3, key.public_key_hex)
    assert verify_version(db, "market", latest["market"], head=head).step("head").status == "pass"
    chain = lineage(db, "corpus", "v1.1")
    assert [f["path"] for f in chain["source_files"]] == [
        "datasets/corpus/v1.1/extra.json",
        "datasets/corpus/v1.1/part-0001.jsonl",
    ]
    assert sum(f["curated_rows"] for f in chain["source_files"]) == chain["curated"]["rows"] == 270
    assert {s["step"] for s in chain["steps"]} == {"stage", "curate"}
    assert (
        chain["fingerprint"]["fingerprint"]
        == latest_meta(instance, fingerprint_key("corpus"), "v1.1")["fingerprint"].value
    )
    assert chain["attestation"]["ton"] is None and chain["models"] == []


def test_identical_files_leave_the_attestation_fresh_and_a_change_makes_it_stale(
    defs, instance, db, drive_root
):
    assert run_market(defs, instance).success
    fp_before = data_version(instance, fingerprint_key("market"), MARKET)

    def status(key):
        return get_stale_status_resolver(instance, list(defs.assets)).get_status(key, MARKET)

    assert status(attestation_key("market")) == StaleStatus.FRESH
    upstream = [
        manifest_key("market"),
        raw_key("market"),
        curated_key("market"),
        fingerprint_key("market"),
    ]
    assert run_market(defs, instance, upstream).success  # same files, materialized again
    assert data_version(instance, fingerprint_key("market"), MARKET) == fp_before
    assert status(attestation_key("market")) == StaleStatus.FRESH
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM attestations").fetchone() == (1,)

    # Attesting the same fingerprint again adds nothing to the ledger.
    assert run_market(defs, instance, [attestation_key("market")]).success
    assert latest_meta(instance, attestation_key("market"), MARKET)["attested"].value == (
        "already, in entry 1"
    )

    # A real change: one value in one file.
    target = drive_root / "datasets/market/2024-06-01/nyse.csv"
    edit_cell(target, 1, 6, lambda close: f"{float(close) + 1:.4f}")
    assert run_market(defs, instance, upstream).success
    assert data_version(instance, fingerprint_key("market"), MARKET) != fp_before
    assert status(attestation_key("market")) == StaleStatus.STALE

    assert run_market(defs, instance, [attestation_key("market")]).success
    assert status(attestation_key("market")) == StaleStatus.FRESH
    meta = latest_meta(instance, attestation_key("market"), MARKET)
    assert meta["attested"].value.startswith("now, in entry 2") and meta["ledger_seq"].value == 2
    assert verify_version(db, "market", MARKET, drive=LocalDrive(drive_root)).ok


@pytest.fixture
def mnemonic(monkeypatch) -> str:
    words = " ".join(mnemonic_new())  # a throwaway wallet on the local test chain
    monkeypatch.setenv("TON_MNEMONIC", words)
    return words


def ton_defs(settings, decls, server):
    from dataclasses import replace

    ton_settings = replace(
        settings,
        provenance=ProvenanceSettings(ton_mnemonic_set=True, ton_api_url=server.api_url),
    )
    return build_defs(ton_settings, decls)


def test_roots_are_anchored_on_ton_when_a_wallet_is_configured(
    settings, decls, instance, db, drive_root, tmp_path, monkeypatch, mnemonic
):
    with serve(tmp_path, monkeypatch) as server:
        wallet = ton.wallet_from_mnemonic(mnemonic)
        server.fund(wallet.address_str)
        defs = ton_defs(settings, decls, server)
        result = run_market(defs, instance)
        assert result.success
        meta = latest_meta(instance, attestation_key("market"), MARKET)
        assert meta["anchoring"].value.startswith("TON testnet tx ")
        assert meta["ton_wallet"].value == f"{wallet.address_str} (testnet)"
        proof = json.loads((drive_root / meta["proof_file"].value).read_text())
        anchor = proof["anchor"]
        assert anchor["wallet"] == wallet.address_str and anchor["comment"].endswith(
            proof["ledger_entry"]["merkle_root"]
        )
        assert server.calls("sendBoc") == 1

        client = ton.TonCenterClient(server.api_url)
        report = verify_version(db, "market", MARKET, ton_client=client)
        assert report.ok, report.to_dict()
        assert report.step("anchor").status == "pass" and report.step("ton").status == "pass"

        # Nothing secret left the process: not in metadata, events, the proof or the requests.
        events = instance.all_logs(result.run_id)
        text = json.dumps([str(e) for e in events]) + json.dumps(proof)
        text += b"".join(server.bodies).decode()
        # The phrase, and no run of three consecutive words of it (single words are common English).
        words = mnemonic.split()
        assert mnemonic not in text
        assert not any(" ".join(words[i : i + 3]) in text for i in range(len(words) - 2))

        server.forget_transactions()
        gone = verify_version(db, "market", MARKET, ton_client=client)
        assert gone.first_failure.name == "ton"
        assert "was not found" in gone.first_failure.detail


def test_a_failed_anchor_fails_the_asset_but_keeps_the_entry_and_proof(
    settings, decls, instance, db, drive_root, tmp_path, monkeypatch, mnemonic
):
    with serve(tmp_path, monkeypatch) as server:  # the wallet is never funded
        defs = ton_defs(settings, decls, server)
        result = run_market(defs, instance)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        text = failure.step_failure_data.user_failure_data.description
        assert "is attested in ledger entry 1 and its proof is written" in text
        assert "fund the wallet" in text
        with db.connect() as conn:
            row = conn.execute("SELECT anchor, drive_path FROM attestations a "
                               "JOIN dataset_proofs p ON p.ledger_seq = a.seq").fetchone()  # fmt: skip
        assert row[0] is None and (drive_root / row[1]).is_file()

        # Once the wallet is funded, the next run anchors the waiting entry.
        server.fund(ton.wallet_from_mnemonic(mnemonic).address_str)
        assert run_market(defs, instance, [attestation_key("market")]).success
        with db.connect() as conn:
            assert conn.execute("SELECT anchor IS NOT NULL FROM attestations").fetchone() == (True,)
