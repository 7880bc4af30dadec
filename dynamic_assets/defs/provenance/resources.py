"""The attestation resource: the pipeline's signing key and, when configured, TON anchoring."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from dynamic_assets.provenance.signing import SigningKey, load_signing_key
from dynamic_assets.settings import DEFAULT_API_URL, Settings

if TYPE_CHECKING:  # the TON stack is imported when anchoring, not when the code location loads
    from dynamic_assets.provenance.ton.anchor import Anchorer
    from dynamic_assets.provenance.ton.toncenter import TonCenterClient


def _value(v: str | None) -> str | None:
    return v.get_value() if isinstance(v, dg.EnvVar) else v


class AttestationResource(dg.ConfigurableResource):
    """Signs ledger entries and proofs; anchors ledger roots on TON when a wallet is given."""

    key_home: str = Field(description="Home folder holding keys/ (the generated signing key).")
    signing_key: str | None = Field(
        default=None, description="Ed25519 signing key (secret: give it as an EnvVar)."
    )
    ton_mnemonic: str | None = Field(
        default=None, description="TON wallet mnemonic (secret: give it as an EnvVar)."
    )
    ton_api_url: str | None = Field(default=None, description="toncenter API v2 base URL.")
    ton_api_key: str | None = Field(
        default=None, description="toncenter API key (secret: give it as an EnvVar)."
    )
    ton_network: str = Field(default="testnet", description="testnet or mainnet.")
    ton_confirm_timeout_s: float = Field(default=90.0, description="Wait this long for the tx.")
    ton_poll_s: float = Field(default=2.0, description="Seconds between getTransactions calls.")

    def signer(self) -> SigningKey:
        """The signing key, generated under the home folder on first use."""
        key = load_signing_key(Path(self.key_home), _value(self.signing_key))
        assert key is not None  # created on first use
        return key

    def existing_signer(self) -> SigningKey | None:
        """The signing key if one is configured or already generated; never creates one."""
        return load_signing_key(Path(self.key_home), _value(self.signing_key), create=False)

    @property
    def anchoring(self) -> bool:
        return bool(self.ton_mnemonic)

    def ton_client(self) -> TonCenterClient | None:
        """A toncenter client when anchoring is on or an API URL is given, else None."""
        if not (self.ton_mnemonic or self.ton_api_url):
            return None
        from dynamic_assets.provenance.ton.toncenter import TonCenterClient

        return TonCenterClient(self.ton_api_url or DEFAULT_API_URL, _value(self.ton_api_key))

    def anchorer(self) -> Anchorer | None:
        if not self.ton_mnemonic:
            return None
        from dynamic_assets.provenance.ton.anchor import Anchorer
        from dynamic_assets.provenance.ton.wallet import wallet_from_mnemonic

        mnemonic = _value(self.ton_mnemonic) or ""
        wallet = wallet_from_mnemonic(mnemonic, testnet=self.ton_network != "mainnet")
        client = self.ton_client()
        assert client is not None
        return Anchorer(client, wallet, self.ton_confirm_timeout_s, self.ton_poll_s)


def build_attestation_resource(settings: Settings) -> AttestationResource:
    """The resource from the settings: secrets as EnvVars, only when they are set."""
    p = settings.provenance
    return AttestationResource(
        key_home=str(settings.home),
        signing_key=dg.EnvVar("ATTESTATION_SIGNING_KEY") if p.signing_key_set else None,
        ton_mnemonic=dg.EnvVar("TON_MNEMONIC") if p.ton_mnemonic_set else None,
        ton_api_url=p.ton_api_url,
        ton_api_key=dg.EnvVar("TON_API_KEY") if p.ton_api_key_set else None,
        ton_network=p.ton_network,
    )
