"""Anchoring: sending a ledger entry's root to TON and waiting for the transaction, and checking an
anchor record offline (address, signature, comment) and online (the transaction itself)."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any

from dynamic_assets.provenance.ton.errors import TonApiError, TonError
from dynamic_assets.provenance.ton.toncenter import (
    TonCenterClient,
    inbound_body_hash,
    message_texts,
    tx_id,
)
from dynamic_assets.provenance.ton.wallet import (
    VALID_FOR_S,
    WALLET_VERSION,
    ExternalMessage,
    Wallet,
    anchor_comment,
    build_anchor_message,
    parse_anchor_message,
    wallet_address_of,
)


def _find(txs: list[dict[str, Any]], body_hash: str | None, comment: str) -> dict | None:
    for tx in txs:
        if body_hash and inbound_body_hash(tx) == body_hash:
            return tx
        if body_hash is None and any(
            comment in t for m in tx.get("out_msgs") or [] for t in message_texts(m)
        ):
            return tx
    return None


@dataclass
class Anchorer:
    """Sends ledger roots to TON and waits for the transaction."""

    client: TonCenterClient
    wallet: Wallet
    confirm_timeout_s: float = 90.0
    poll_s: float = 2.0

    @property
    def network(self) -> str:
        return "testnet" if self.wallet.testnet else "mainnet"

    def _record(
        self, tx: dict, msg: ExternalMessage | None, comment: str, boc: bytes | None
    ) -> dict:
        lt, hex_hash, b64_hash = tx_id(tx)
        return {
            "chain": "ton",
            "network": self.network,
            "api": self.client.describe(),
            "wallet": self.wallet.address_str,
            "wallet_raw": self.wallet.address.to_str(is_user_friendly=False),
            "wallet_version": WALLET_VERSION,
            "wallet_public_key": self.wallet.public_key.hex(),
            "tx_lt": lt,
            "tx_hash": hex_hash,
            "tx_hash_b64": b64_hash,
            "utime": int(tx.get("utime") or 0),
            "comment": comment,
            "body_hash": inbound_body_hash(tx),
            "seqno": msg.seqno if msg else None,
            "external_message_boc": base64.b64encode(boc).decode("ascii") if boc else None,
        }

    def anchor(self, seq: int, merkle_root: str, *, now: float | None = None) -> dict[str, Any]:
        """Send entry `seq`'s root and return the anchor record once the transaction is seen.

        If a transaction carrying this root is already among the wallet's recent ones (an
        earlier attempt that timed out), it is used instead of sending again.
        """
        address = self.wallet.address_str
        comment = anchor_comment(seq, merkle_root)
        earlier = _find(self.client.transactions(address, limit=32), None, comment)
        if earlier is not None:
            return self._record(earlier, None, comment, None)
        state = self.client.address_state(address)
        if state == "active":
            seqno, deploy = self.client.seqno(address), False
        elif state in ("uninitialized", "uninit", "nonexist"):
            seqno, deploy = 0, True
        else:
            raise TonError(f"the anchoring wallet {address} is {state}; it cannot send messages")
        valid_until = int(now if now is not None else time.time()) + VALID_FOR_S
        msg = build_anchor_message(
            self.wallet,
            seqno=seqno,
            seq=seq,
            merkle_root=merkle_root,
            valid_until=valid_until,
            deploy=deploy,
        )
        boc = msg.boc
        try:
            self.client.send_boc(boc)
        except TonApiError as exc:
            hint = (
                f"; fund the wallet {address} ({self.network}) so it can pay the fee"
                if deploy
                else ""
            )
            raise TonError(f"sending the root of entry {seq}: {exc}{hint}") from None
        deadline = time.monotonic() + self.confirm_timeout_s
        while True:
            tx = _find(self.client.transactions(address, limit=16), msg.body_hash, comment)
            if tx is not None:
                return self._record(tx, msg, comment, boc)
            if time.monotonic() >= deadline:
                raise TonError(
                    f"sent the root of entry {seq} from {address} (seqno {seqno}) but saw no "
                    f"transaction within {self.confirm_timeout_s:.0f} s; the next run looks again"
                )
            time.sleep(self.poll_s)


def check_anchor_offline(anchor: dict[str, Any], merkle_root: str, seq: int) -> list[str]:
    """Problems with an anchor record that need no network: the wallet address belongs to the
    recorded public key, the message is signed by it and carries this entry's root."""
    problems = []
    expected = anchor_comment(seq, merkle_root)
    if anchor.get("comment") != expected:
        problems.append(f"the anchor's comment {anchor.get('comment')!r} is not {expected!r}")
    pub = str(anchor.get("wallet_public_key") or "")
    try:
        raw = wallet_address_of(pub)
    except ValueError:
        return problems + ["the anchor's wallet public key is not 32 bytes of hex"]
    if anchor.get("wallet_raw") and anchor["wallet_raw"] != raw:
        problems.append(
            f"the anchor's wallet {anchor['wallet_raw']} is not the v4r2 wallet of its public key ({raw})"
        )
    boc_b64 = anchor.get("external_message_boc")
    if boc_b64:
        try:
            parsed = parse_anchor_message(base64.b64decode(boc_b64), pub)
        except (TonError, binascii.Error, ValueError) as exc:
            return problems + [str(exc)]
        if not parsed.signature_valid:
            problems.append("the external message's signature does not verify with the wallet key")
        if parsed.comment != expected:
            problems.append(f"the external message carries {parsed.comment!r}, not {expected!r}")
        if parsed.dest != raw:
            problems.append(f"the external message goes to {parsed.dest}, not the wallet {raw}")
        if anchor.get("body_hash") and parsed.body_hash != anchor["body_hash"]:
            problems.append("the external message body is not the one the transaction received")
    return problems


def check_anchor_online(
    client: TonCenterClient, anchor: dict[str, Any], merkle_root: str, seq: int
) -> list[str]:
    """Problems found by asking the API for the recorded transaction."""
    expected = anchor_comment(seq, merkle_root)
    try:
        txs = client.transactions(
            anchor["wallet"], limit=1, lt=int(anchor["tx_lt"]), tx_hash=anchor["tx_hash_b64"]
        )
    except (KeyError, TypeError, ValueError):
        return ["the anchor record lacks the wallet, tx_lt or tx_hash_b64"]
    except TonApiError as exc:
        return [
            f"transaction {str(anchor.get('tx_hash', ''))[:16]}… at lt {anchor.get('tx_lt')} "
            f"was not found: {exc}"
        ]
    tx = next((t for t in txs if tx_id(t)[1] == anchor.get("tx_hash")), None)
    if tx is None:
        return [
            f"no transaction {anchor.get('tx_hash', '')[:16]}… at lt {anchor.get('tx_lt')} "
            f"on wallet {anchor.get('wallet')} according to {client.describe()}"
        ]
    problems = []
    if anchor.get("body_hash") and inbound_body_hash(tx) != anchor["body_hash"]:
        problems.append("the transaction's inbound message is not the recorded one")
    if not any(expected in t for m in tx.get("out_msgs") or [] for t in message_texts(m)):
        problems.append(f"the transaction sent no message carrying {expected!r}")
    return problems
