"""TON anchoring: the wallet v4r2 message built with pytoniq-core is read back with tonsdk (an
independent implementation): its body holds the root and its signature verifies with the
wallet's public key. The toncenter v2 exchange (getAddressState, runGetMethod seqno, sendBoc,
getTransactions) runs against a local HTTPS server speaking API v2's documented shapes."""

from __future__ import annotations

import base64
import itertools
import json

import pytest
from nacl.signing import VerifyKey
from pytoniq_core.crypto.keys import mnemonic_new
from tonsdk.contract.wallet import Wallets, WalletVersionEnum

from dynamic_assets.provenance import ton
from dynamic_assets_tests.support.toncenter_server import parse_external, serve

ROOT = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


@pytest.fixture(scope="module")
def words() -> list[str]:
    return mnemonic_new()  # a throwaway testnet wallet, never funded anywhere real


@pytest.fixture(scope="module")
def wallet(words) -> ton.Wallet:
    return ton.wallet_from_mnemonic(" ".join(words))


def test_the_message_reads_back_with_tonsdk_and_its_signature_verifies(words, wallet):
    _m, public, _s, theirs = Wallets.from_mnemonics(words, WalletVersionEnum.v4r2, 0)
    assert public == wallet.public_key
    assert theirs.address.to_string(False) == wallet.address.to_str(is_user_friendly=False)

    msg = ton.build_anchor_message(
        wallet, seqno=0, seq=7, merkle_root=ROOT, valid_until=1_900_000_000, deploy=True
    )
    parsed = parse_external(msg.boc)
    assert parsed["dest"] == theirs.address.to_string(False)
    assert parsed["init"]["code_hash"] == ton.WALLET_V4R2_CODE_HASH
    assert parsed["init"]["public_key"] == public
    VerifyKey(public).verify(parsed["signing_hash"], parsed["signature"])  # raises if bad
    assert (parsed["wallet_id"], parsed["valid_until"], parsed["seqno"], parsed["op"]) == (
        698983191,
        1_900_000_000,
        0,
        0,
    )
    assert parsed["messages"] == [
        {
            "mode": 3,
            "to": theirs.address.to_string(False),
            "value": 0,
            "text": f"dynamic-assets ledger entry 7 merkle root {ROOT}",
        }
    ]
    assert parsed["body_cell"].bytes_hash().hex() == msg.body_hash

    later = parse_external(
        ton.build_anchor_message(
            wallet, seqno=12, seq=8, merkle_root=ROOT, valid_until=1_900_000_000, deploy=False
        ).boc
    )
    assert later["init"] is None and later["seqno"] == 12


def test_a_bad_mnemonic_is_refused_without_echoing_it():
    secret = "abandon " * 23 + "zebra"
    with pytest.raises(ton.TonError) as info:
        ton.wallet_from_mnemonic(secret)
    assert "24-word" in str(info.value) and "abandon" not in str(info.value)
    assert "_seed" not in repr(ton.wallet_from_mnemonic(" ".join(mnemonic_new())))


def _anchorer(server, wallet, **kw) -> ton.Anchorer:
    client = ton.TonCenterClient(server.api_url, kw.pop("api_key", None), backoff=0.01)
    return ton.Anchorer(client, wallet, confirm_timeout_s=kw.pop("timeout", 5), poll_s=0.02)


def test_anchoring_deploys_sends_and_confirms_through_toncenter(
    tmp_path, monkeypatch, words, wallet
):
    with serve(tmp_path, monkeypatch, api_key="test-api-key") as server:
        server.fund(wallet.address_str)
        server.fail_next("sendBoc", 429)  # rate limited once: retried
        server.hide_new_transactions(2)  # the transaction shows up on the third poll
        anchorer = _anchorer(server, wallet, api_key="test-api-key")

        first = anchorer.anchor(1, ROOT)
        assert first["tx_lt"] > 0 and len(first["tx_hash"]) == 64
        assert first["wallet"] == wallet.address_str and first["seqno"] == 0
        assert first["comment"] == f"dynamic-assets ledger entry 1 merkle root {ROOT}"
        assert server.calls("sendBoc") == 2 and server.calls("getTransactions") >= 4
        assert server.calls("runGetMethod") == 0  # an uninitialized wallet has no seqno to ask
        assert server.account(wallet.address_str).state == "active"

        second = anchorer.anchor(2, "ab" * 32)
        assert server.calls("runGetMethod") == 1 and second["seqno"] == 1
        assert second["tx_lt"] > first["tx_lt"]

        # What went over the wire: the API key in its header, never the mnemonic or the key.
        sent = b"".join(server.bodies).decode()
        # (One word alone may be a word of the protocol too, e.g. "address": look for runs of them.)
        assert not any(
            f'"{a}","{b}"' in sent or f"{a} {b}" in sent for a, b in itertools.pairwise(words)
        )
        assert " ".join(words) not in sent

        client = anchorer.client
        assert ton.check_anchor_online(client, first, ROOT, 1) == []
        assert ton.check_anchor_offline(first, ROOT, 1) == []
        wrong = ton.check_anchor_online(client, first, "cd" * 32, 1)
        assert wrong and "sent no message carrying" in wrong[0]
        server.forget_transactions()
        gone = ton.check_anchor_online(client, first, ROOT, 1)
        assert gone and "cannot locate transaction" in gone[0]


def test_an_unfunded_wallet_and_a_missing_key_are_explained(tmp_path, monkeypatch, wallet):
    with serve(tmp_path, monkeypatch, api_key="k") as server:
        with pytest.raises(ton.TonError, match="API key does not exist"):
            _anchorer(server, wallet).anchor(1, ROOT)
        with pytest.raises(ton.TonError, match=r"cannot apply external message.*fund the wallet"):
            _anchorer(server, wallet, api_key="k").anchor(1, ROOT)


def test_a_timed_out_anchor_is_found_by_the_next_attempt(tmp_path, monkeypatch, wallet):
    with serve(tmp_path, monkeypatch) as server:
        server.fund(wallet.address_str)
        server.hide_new_transactions(1000)
        with pytest.raises(ton.TonError, match="saw no transaction within"):
            _anchorer(server, wallet, timeout=0.2).anchor(3, ROOT)
        server.hide_new_transactions(0)
        found = _anchorer(server, wallet).anchor(3, ROOT)
        assert server.calls("sendBoc") == 1  # not sent twice
        assert found["comment"].endswith(ROOT) and found["external_message_boc"] is None


def test_offline_checks_catch_a_forged_anchor(tmp_path, monkeypatch, wallet):
    with serve(tmp_path, monkeypatch) as server:
        server.fund(wallet.address_str)
        anchor = _anchorer(server, wallet).anchor(1, ROOT)
    assert ton.check_anchor_offline(anchor, ROOT, 1) == []
    assert "is not" in ton.check_anchor_offline(anchor, "cd" * 32, 1)[0]

    other = ton.wallet_from_mnemonic(" ".join(mnemonic_new()))
    forged_msg = ton.build_anchor_message(
        other, seqno=0, seq=1, merkle_root=ROOT, valid_until=1_900_000_000, deploy=True
    )
    forged = dict(anchor, external_message_boc=base64.b64encode(forged_msg.boc).decode())
    problems = " ".join(ton.check_anchor_offline(forged, ROOT, 1))
    assert "signature does not verify" in problems and "not the wallet" in problems
    json.dumps(anchor)  # the record is plain JSON
