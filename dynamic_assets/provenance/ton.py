"""Anchoring ledger roots on TON: a wallet v4r2 external message built with pytoniq-core, sent and
confirmed through the toncenter HTTP API v2.

The wallet (derived from `TON_MNEMONIC`, a standard 24-word TON mnemonic) sends itself an
internal message of 0 TON whose body is the text comment

    dynamic-assets ledger entry <seq> merkle root <root hex>

The external message that carries it is signed with the wallet key (Ed25519 over the hash of
the signing cell: wallet_id, valid_until, seqno, op 0, send mode, ^internal message), sent with
`sendBoc`, and confirmed by finding the wallet's transaction whose inbound message body hash is
the one sent (`getTransactions`). The anchor recorded in the ledger holds the transaction hash
and lt, the wallet address and public key, and the external message BOC, so an auditor can check
the signature and the root offline and the transaction through any TON API.

Nothing here logs or returns the mnemonic or the private key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pytoniq_core import (
    Address,
    Builder,
    Cell,
    CurrencyCollection,
    ExternalMsgInfo,
    InternalMsgInfo,
    MessageAny,
    StateInit,
)
from pytoniq_core.crypto.keys import mnemonic_is_valid, mnemonic_to_private_key
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dynamic_assets.provenance.signing import verify_signature
from dynamic_assets.settings import DEFAULT_API_URL

WALLET_VERSION = "v4r2"
# The wallet v4r2 contract code (the standard one every TON wallet app deploys); its cell hash
# is the well-known feb5ff68…d5c0, checked when the module is used.
WALLET_V4R2_CODE_BOC = bytes.fromhex(
    "B5EE9C72410214010002D4000114FF00F4A413F4BCF2C80B010201200203020148040504F8F28308D71820D31FD3"
    "1FD31F02F823BBF264ED44D0D31FD31FD3FFF404D15143BAF2A15151BAF2A205F901541064F910F2A3F80024A4C8"
    "CB1F5240CB1F5230CBFF5210F400C9ED54F80F01D30721C0009F6C519320D74A96D307D402FB00E830E021C001E3"
    "0021C002E30001C0039130E30D03A4C8CB1F12CB1FCBFF1011121302E6D001D0D3032171B0925F04E022D749C120"
    "925F04E002D31F218210706C7567BD22821064737472BDB0925F05E003FA403020FA4401C8CA07CBFFC9D0ED44D0"
    "810140D721F404305C810108F40A6FA131B3925F07E005D33FC8258210706C7567BA923830E30D03821064737472"
    "BA925F06E30D06070201200809007801FA00F40430F8276F2230500AA121BEF2E0508210706C7567831EB1708018"
    "5004CB0526CF1658FA0219F400CB6917CB1F5260CB3F20C98040FB0006008A5004810108F45930ED44D0810140D7"
    "20C801CF16F400C9ED540172B08E23821064737472831EB17080185005CB055003CF1623FA0213CB6ACB1FCB3FC9"
    "8040FB00925F03E20201200A0B0059BD242B6F6A2684080A06B90FA0218470D4080847A4937D29910CE6903E9FF9"
    "837812801B7810148987159F31840201580C0D0011B8C97ED44D0D70B1F8003DB29DFB513420405035C87D010C00"
    "B23281F2FFF274006040423D029BE84C600201200E0F0019ADCE76A26840206B90EB85FFC00019AF1DF6A2684010"
    "6B90EB858FC0006ED207FA00D4D422F90005C8CA0715CBFFC9D077748018C8CB05CB0222CF165005FA0214CB6B12"
    "CCCCC973FB00C84014810108F451F2A7020070810108D718FA00D33FC8542047810108F451F2A782106E6F746570"
    "748018C8CB05CB025006CF165004FA0214CB6A12CB1FCB3FC973FB0002006C810108D718FA00D33F305224810108"
    "F459F2A782106473747270748018C8CB05CB025005CF165003FA0213CB6ACB1F12CB3FC973FB00000AF400C9ED54"
    "696225E5"
)
WALLET_V4R2_CODE_HASH = "feb5ff6820e2ff0d9483e7e0d62c817d846789fb4ae580c878866d959dabd5c0"
SUBWALLET_ID_BASE = 698983191  # wallet_id = base + workchain, as every v4 wallet app uses
SEND_MODE = 3  # pay fees separately, ignore errors
COMMENT_PREFIX = "dynamic-assets ledger entry"
VALID_FOR_S = 300


class TonError(RuntimeError):
    """TON anchoring failed; the message says which step and why (never a secret)."""


class TonApiError(TonError):
    """toncenter answered with an error, or not with API v2's JSON shape."""


# ---------------------------------------------------------------- wallet and message


@functools.cache
def wallet_code() -> Cell:
    code = Cell.one_from_boc(WALLET_V4R2_CODE_BOC)
    if code.hash.hex() != WALLET_V4R2_CODE_HASH:  # pragma: no cover - a corrupted constant
        raise TonError("the built-in wallet v4r2 code does not have the standard code hash")
    return code


@dataclass(frozen=True)
class Wallet:
    """A wallet v4r2 derived from a mnemonic. The private key is kept out of repr."""

    public_key: bytes
    workchain: int
    testnet: bool
    _seed: bytes = field(repr=False)

    @property
    def wallet_id(self) -> int:
        return SUBWALLET_ID_BASE + self.workchain

    def state_init(self) -> StateInit:
        data = (
            Builder()
            .store_uint(0, 32)  # seqno
            .store_uint(self.wallet_id, 32)
            .store_bytes(self.public_key)
            .store_bit(0)  # no plugins
            .end_cell()
        )
        return StateInit(code=wallet_code(), data=data)

    @functools.cached_property
    def address(self) -> Address:
        return Address((self.workchain, self.state_init().serialize().hash))

    @property
    def address_str(self) -> str:
        """User-friendly, non-bounceable (as wallets show it), test-only flag on testnet."""
        return self.address.to_str(
            is_user_friendly=True, is_bounceable=False, is_test_only=self.testnet
        )

    def sign(self, data: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self._seed).sign(data)


def wallet_from_mnemonic(mnemonic: str, *, testnet: bool = True, workchain: int = 0) -> Wallet:
    """The v4r2 wallet of a 24-word TON mnemonic (the words are never echoed in errors)."""
    words = mnemonic.split()
    if len(words) != 24 or not mnemonic_is_valid(words):
        raise TonError(
            f"TON_MNEMONIC is not a valid 24-word TON wallet mnemonic ({len(words)} words given)"
        )
    public, private = mnemonic_to_private_key(words)
    return Wallet(bytes(public), workchain, testnet, bytes(private[:32]))


def anchor_comment(seq: int, merkle_root: str) -> str:
    return f"{COMMENT_PREFIX} {seq} merkle root {merkle_root}"


def comment_cell(text: str) -> Cell:
    """A standard text comment body: op 0 (32 bits) and the UTF-8 text."""
    return Builder().store_uint(0, 32).store_snake_string(text).end_cell()


@dataclass(frozen=True)
class ExternalMessage:
    message: Cell
    body: Cell
    seqno: int
    valid_until: int
    comment: str

    @property
    def boc(self) -> bytes:
        return self.message.to_boc()

    @property
    def message_hash(self) -> str:
        return self.message.hash.hex()

    @property
    def body_hash(self) -> str:
        return self.body.hash.hex()


def build_anchor_message(
    wallet: Wallet,
    *,
    seqno: int,
    seq: int,
    merkle_root: str,
    valid_until: int,
    deploy: bool,
) -> ExternalMessage:
    """The signed external message by which the wallet sends itself the root as a comment."""
    comment = anchor_comment(seq, merkle_root)
    internal = MessageAny(
        info=InternalMsgInfo(
            ihr_disabled=True,
            bounce=False,
            bounced=False,
            src=None,
            dest=wallet.address,
            value=CurrencyCollection(0),
            ihr_fee=0,
            fwd_fee=0,
            created_lt=0,
            created_at=0,
        ),
        init=None,
        body=comment_cell(comment),
    )
    signing = (
        Builder()
        .store_uint(wallet.wallet_id, 32)
        .store_uint(valid_until, 32)
        .store_uint(seqno, 32)
        .store_uint(0, 8)  # op: simple send
        .store_uint(SEND_MODE, 8)
        .store_ref(internal.serialize())
        .end_cell()
    )
    signature = wallet.sign(signing.hash)
    body = Builder().store_bytes(signature).store_cell(signing).end_cell()
    message = MessageAny(
        info=ExternalMsgInfo(src=None, dest=wallet.address, import_fee=0),
        init=wallet.state_init() if deploy else None,
        body=body,
    ).serialize()
    return ExternalMessage(message, body, seqno, valid_until, comment)


@dataclass(frozen=True)
class ParsedAnchor:
    """What an external anchor message says, read back from its BOC."""

    dest: str
    signature_valid: bool
    seqno: int
    valid_until: int
    comment: str | None
    body_hash: str


def parse_anchor_message(boc: bytes, public_key_hex: str) -> ParsedAnchor:
    """Read an anchor message back: destination, whether the wallet signature verifies with
    `public_key_hex`, and the comment it carries. Raises `TonError` on a malformed BOC."""
    try:
        msg = MessageAny.deserialize(Cell.one_from_boc(boc).begin_parse())
        if not msg.is_external:
            raise TonError("the anchor BOC is not an external inbound message")
        body = msg.body.begin_parse()
        signature = body.load_bytes(64)
        signing = body.to_cell()
        sp = signing.begin_parse()
        sp.load_uint(32)  # wallet_id
        valid_until = sp.load_uint(32)
        seqno = sp.load_uint(32)
        sp.load_uint(8)  # op
        sp.load_uint(8)  # mode
        internal = MessageAny.deserialize(sp.load_ref().begin_parse())
        ib = internal.body.begin_parse()
        comment = None
        if ib.remaining_bits >= 32 and ib.load_uint(32) == 0:
            comment = ib.load_snake_string()
    except TonError:
        raise
    except Exception as exc:  # pytoniq-core raises many types on malformed cells
        raise TonError(f"the anchor message BOC cannot be parsed: {exc}") from None
    return ParsedAnchor(
        dest=msg.info.dest.to_str(is_user_friendly=False),
        signature_valid=verify_signature(public_key_hex, signature, signing.hash),
        seqno=seqno,
        valid_until=valid_until,
        comment=comment,
        body_hash=msg.body.hash.hex(),
    )


def wallet_address_of(public_key_hex: str, workchain: int = 0) -> str:
    """The raw address (`wc:hex`) of the v4r2 wallet of a public key."""
    w = Wallet(bytes.fromhex(public_key_hex), workchain, True, b"\x00" * 32)
    return w.address.to_str(is_user_friendly=False)


# ---------------------------------------------------------------- toncenter API v2


class TonCenterClient:
    """A small toncenter API v2 client: JSON over HTTPS, `{"ok": true, "result": ...}` answers,
    retries with backoff on 429 and 5xx gateway errors, the API key in `X-API-Key`."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        timeout: float = 15.0,
        retries: int = 4,
        backoff: float = 0.5,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            backoff_factor=backoff,
            status_forcelist=(429, 502, 503, 504),
            allowed_methods=None,  # sendBoc is safe to repeat: a seqno is spent once
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if api_key:
            self.session.headers["X-API-Key"] = api_key

    def describe(self) -> str:
        return self.base_url

    def _call(self, method: str, *, params: dict | None = None, body: dict | None = None) -> Any:
        url = f"{self.base_url}/{method}"
        try:
            if body is None:
                resp = self.session.get(url, params=params, timeout=self.timeout)
            else:
                resp = self.session.post(url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TonApiError(
                f"toncenter {method}: request to {self.base_url} failed: {exc}"
            ) from None
        try:
            data = resp.json()
        except ValueError:
            raise TonApiError(
                f"toncenter {method}: HTTP {resp.status_code}, not a JSON answer: {resp.text[:200]!r}"
            ) from None
        if not isinstance(data, dict) or "ok" not in data:
            raise TonApiError(f"toncenter {method}: not an API v2 answer: {str(data)[:200]}")
        if not data["ok"] or resp.status_code >= 400:
            raise TonApiError(
                f"toncenter {method}: HTTP {resp.status_code}, error {data.get('code', '')}: "
                f"{data.get('error') or data.get('result')}"
            )
        return data.get("result")

    def address_state(self, address: str) -> str:
        return str(self._call("getAddressState", params={"address": address}))

    def seqno(self, address: str) -> int:
        result = self._call(
            "runGetMethod", body={"address": address, "method": "seqno", "stack": []}
        )
        exit_code = result.get("exit_code")
        if exit_code != 0:
            raise TonApiError(f"toncenter runGetMethod seqno on {address}: exit code {exit_code}")
        try:
            kind, value = result["stack"][0]
            if kind != "num":
                raise ValueError(kind)
            return int(value, 16) if str(value).startswith(("0x", "-0x")) else int(value)
        except (KeyError, IndexError, TypeError, ValueError):
            raise TonApiError(
                f"toncenter runGetMethod seqno: unexpected stack {result.get('stack')!r}"
            ) from None

    def send_boc(self, boc: bytes) -> None:
        self._call("sendBoc", body={"boc": base64.b64encode(boc).decode("ascii")})

    def transactions(
        self,
        address: str,
        *,
        limit: int = 16,
        lt: int | None = None,
        tx_hash: str | None = None,
        archival: bool = False,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"address": address, "limit": limit}
        if lt is not None and tx_hash is not None:
            params.update(lt=str(lt), hash=tx_hash)
        if archival:
            params["archival"] = "true"
        result = self._call("getTransactions", params=params)
        if not isinstance(result, list):
            raise TonApiError(
                f"toncenter getTransactions: expected a list, got {str(result)[:200]}"
            )
        return result


# ---------------------------------------------------------------- anchoring and checking


def _b64_to_hex(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4)).hex()
    except (binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
        except (binascii.Error, ValueError):
            return None


def message_texts(msg: dict[str, Any] | None) -> list[str]:
    """The text comments a toncenter raw.message carries, however the API presents them."""
    if not msg:
        return []
    texts = []
    if isinstance(msg.get("message"), str) and msg["message"]:
        texts.append(msg["message"])
    data = msg.get("msg_data") or {}
    if data.get("@type") == "msg.dataText" and data.get("text"):
        with contextlib.suppress(binascii.Error, ValueError):
            texts.append(base64.b64decode(data["text"]).decode("utf-8", "replace"))
    if data.get("@type") == "msg.dataRaw" and data.get("body"):
        try:
            body = Cell.one_from_boc(base64.b64decode(data["body"])).begin_parse()
            if body.remaining_bits >= 32 and body.load_uint(32) == 0:
                texts.append(body.load_snake_string())
        except Exception:  # not a comment body
            pass
    return texts


def inbound_body_hash(tx: dict[str, Any]) -> str | None:
    """The hash (hex) of a transaction's inbound message body, from the API's fields."""
    msg = tx.get("in_msg") or {}
    if msg.get("body_hash"):
        return _b64_to_hex(msg["body_hash"])
    data = msg.get("msg_data") or {}
    if data.get("body"):
        try:
            return Cell.one_from_boc(base64.b64decode(data["body"])).hash.hex()
        except Exception:
            return None
    return None


def tx_id(tx: dict[str, Any]) -> tuple[int, str, str]:
    """(lt, hash as hex, hash as the API's base64) of a raw.transaction."""
    tid = tx.get("transaction_id") or {}
    h = str(tid.get("hash", ""))
    return int(tid.get("lt", 0)), _b64_to_hex(h) or "", h


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
