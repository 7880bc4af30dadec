"""Provenance settings: which signing key and whether ledger roots are anchored on TON.

Read by `dynamic_assets.settings.Settings.from_env` (the one place that reads the environment)
and held there as `Settings.provenance`. Secrets are not held here, only whether they are set;
they reach the attestation resource as `dg.EnvVar(...)`.

| variable | meaning | default |
|---|---|---|
| ATTESTATION_SIGNING_KEY | Ed25519 key that signs the ledger and proofs (secret) | generated in $DYNAMIC_ASSETS_HOME/keys |
| TON_MNEMONIC | 24-word wallet (v4r2) that anchors ledger roots on TON (secret) | unset: anchoring off |
| TON_API_URL | toncenter API v2 base URL | https://testnet.toncenter.com/api/v2 |
| TON_API_KEY | toncenter API key (secret) | none (toncenter allows 1 request/s) |
| TON_NETWORK | testnet or mainnet (address format, records) | testnet |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_API_URL = "https://testnet.toncenter.com/api/v2"


@dataclass(frozen=True)
class ProvenanceSettings:
    signing_key_set: bool = False
    ton_mnemonic_set: bool = False
    ton_api_url: str | None = None
    ton_api_key_set: bool = False
    ton_network: str = "testnet"

    @property
    def anchoring(self) -> bool:
        """TON anchoring is on when a wallet mnemonic is given."""
        return self.ton_mnemonic_set

    @property
    def api_url(self) -> str:
        return self.ton_api_url or DEFAULT_API_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProvenanceSettings:
        network = (env.get("TON_NETWORK") or "testnet").strip().lower()
        if network not in ("testnet", "mainnet"):
            raise ValueError(f"TON_NETWORK is {network!r}: use testnet or mainnet")
        return cls(
            signing_key_set=bool(env.get("ATTESTATION_SIGNING_KEY")),
            ton_mnemonic_set=bool(env.get("TON_MNEMONIC")),
            ton_api_url=(env.get("TON_API_URL") or "").strip() or None,
            ton_api_key_set=bool(env.get("TON_API_KEY")),
            ton_network=network,
        )
