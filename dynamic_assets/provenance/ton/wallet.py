"""The anchoring wallet (v4r2, from a mnemonic) and its messages, built and read back with
pytoniq-core: the signed external message that carries a ledger root as a text comment."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import cast

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

from dynamic_assets.provenance.signing import verify_signature
from dynamic_assets.provenance.ton.errors import TonError

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
# addr_none: pytoniq-core's Builder stores None as the empty address, though the message info
# classes annotate the source as `Address`.
ADDR_NONE = cast(Address, None)


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
            src=ADDR_NONE,
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
        info=ExternalMsgInfo(src=ADDR_NONE, dest=wallet.address, import_fee=0),
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
