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

`wallet` builds and reads the wallet's messages (pytoniq-core), `toncenter` is the HTTP client
and reads its transactions, `anchor` sends roots and checks anchor records.
"""

from dynamic_assets.provenance.ton.anchor import (
    Anchorer,
    check_anchor_offline,
    check_anchor_online,
)
from dynamic_assets.provenance.ton.errors import TonApiError, TonError
from dynamic_assets.provenance.ton.toncenter import TonCenterClient
from dynamic_assets.provenance.ton.wallet import (
    WALLET_V4R2_CODE_HASH,
    Wallet,
    build_anchor_message,
    wallet_from_mnemonic,
)

__all__ = [
    "WALLET_V4R2_CODE_HASH",
    "Anchorer",
    "TonApiError",
    "TonCenterClient",
    "TonError",
    "Wallet",
    "build_anchor_message",
    "check_anchor_offline",
    "check_anchor_online",
    "wallet_from_mnemonic",
]
