"""One settings object, read from the environment: the only place that picks embedded or production.

| variable | meaning | default |
|---|---|---|
| DYNAMIC_ASSETS_HOME | state folder (embedded Postgres, MLflow store, keys) | ./.dynamic_assets |
| DYNAMIC_ASSETS_DRIVE | local drive root (the folder laid out like OneDrive) | $HOME_FOLDER/onedrive/DynamicCapital/ai-training |
| DYNAMIC_ASSETS_CONFIG | the dataset/model declarations file | ./dynamic_assets.yaml, else the packaged demo |
| SUPABASE_DB_URL | Postgres connection string (secret) | unset: embedded Postgres under the home folder |
| ONEDRIVE_CLIENT_ID, ONEDRIVE_TENANT_ID | set: the drive is the team's OneDrive through Microsoft Graph | unset: the local drive |
| ONEDRIVE_CLIENT_SECRET | app-only access (secret); unset: delegated, via `dynamic-assets onedrive login` | - |
| ONEDRIVE_DRIVE_ID / ONEDRIVE_USER | the drive (`/drives/{id}`) or a user's OneDrive | delegated: the signed-in user's |
| ONEDRIVE_ROOT, ONEDRIVE_GRAPH_URL, ONEDRIVE_AUTHORITY_HOST | folder in the drive; Graph and sign-in hosts | DynamicCapital/ai-training; public cloud |
| ONEDRIVE_GRAPH_SCOPE | the resource Graph tokens are asked for (`<resource>/.default`; delegated permissions are asked as `<resource>/Files.Read.All`), for a Graph URL behind a gateway in a national cloud | the national-cloud Graph host of ONEDRIVE_GRAPH_URL, else https://graph.microsoft.com/.default |
| DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS | runs the home's Dagster instance starts at once (its run queue) | the number of CPUs |
| MLFLOW_TRACKING_URI | MLflow tracking server or store (may hold credentials: an EnvVar) | sqlite under $HOME_FOLDER/mlflow |
| ATTESTATION_SIGNING_KEY, TON_*: see `ProvenanceSettings` | signing key, TON anchoring | |
| DYNAMIC_ASSETS_WEBHOOK_*: see `WebhookSettings` | signed alerts | |
| DYNAMIC_ASSETS_REVIEW_TZ | time zone of the weekly review's schedule (Monday 09:00), an IANA name | UTC |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dynamic_assets.declarations.model import DEMO_CONFIG

DEFAULT_DRIVE_ROOT = "DynamicCapital/ai-training"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
TOKEN_CACHE_FILE = "msal_token_cache.json"


@dataclass(frozen=True)
class OneDriveSettings:
    """The team's OneDrive through Microsoft Graph. The client secret is not held here: only
    whether it is set (it reaches the drive resource as `dg.EnvVar("ONEDRIVE_CLIENT_SECRET")`)."""

    tenant_id: str
    client_id: str
    client_secret_set: bool
    drive_id: str | None
    user: str | None
    root: str
    graph_url: str
    authority_host: str
    token_cache: Path
    graph_scope: str | None = None

    @property
    def auth(self) -> str:
        return "app-only" if self.client_secret_set else "delegated"

    @classmethod
    def from_env(cls, env, home: Path) -> OneDriveSettings | None:
        client_id = (env.get("ONEDRIVE_CLIENT_ID") or "").strip()
        if not client_id:
            return None
        tenant_id = (env.get("ONEDRIVE_TENANT_ID") or "").strip()
        if not tenant_id:
            raise ValueError("ONEDRIVE_CLIENT_ID is set but ONEDRIVE_TENANT_ID is not")
        secret_set = bool(env.get("ONEDRIVE_CLIENT_SECRET"))
        drive_id = (env.get("ONEDRIVE_DRIVE_ID") or "").strip() or None
        user = (env.get("ONEDRIVE_USER") or "").strip() or None
        if secret_set and not (drive_id or user):
            raise ValueError(
                "app-only OneDrive access (ONEDRIVE_CLIENT_SECRET set) needs ONEDRIVE_DRIVE_ID "
                "or ONEDRIVE_USER: an app has no drive of its own"
            )
        return cls(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret_set=secret_set,
            drive_id=drive_id,
            user=user,
            root=(env.get("ONEDRIVE_ROOT") or DEFAULT_DRIVE_ROOT).strip("/"),
            graph_url=(env.get("ONEDRIVE_GRAPH_URL") or DEFAULT_GRAPH_URL).rstrip("/"),
            authority_host=(env.get("ONEDRIVE_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST)
            .strip()
            .rstrip("/"),
            token_cache=home / TOKEN_CACHE_FILE,
            graph_scope=_graph_scope(env.get("ONEDRIVE_GRAPH_SCOPE")),
        )


def _graph_scope(value: str | None) -> str | None:
    scope = (value or "").strip()
    if not scope:
        return None
    if any(ch.isspace() for ch in scope):
        raise ValueError(
            "ONEDRIVE_GRAPH_SCOPE is one scope or resource, e.g. https://graph.microsoft.us/.default"
        )
    return scope


def _max_concurrent_runs(value: str | None) -> int:
    text = (value or "").strip()
    if not text:
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise ValueError(
            f"DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS is {text!r}: use a whole number of runs, 1 or more"
        )
    return int(text)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{name} is {text!r}: use a number of seconds greater than 0")
    return seconds


def _time_zone(value: str | None) -> str:
    name = (value or "").strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"DYNAMIC_ASSETS_REVIEW_TZ is {name!r}: use an IANA time zone such as Europe/Berlin"
        ) from None
    return name


DEFAULT_API_URL = "https://testnet.toncenter.com/api/v2"


@dataclass(frozen=True)
class ProvenanceSettings:
    """Which signing key and whether ledger roots are anchored on TON.

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


@dataclass(frozen=True)
class WebhookSettings:
    """Whether webhooks are configured (`Settings.webhooks`). Like every secret setting, the
    values are not held here, only whether they are set: the URLs (which may carry tokens) and
    the signing secret reach the alert sensors as `dg.EnvVar`s.

    | variable | meaning |
    |---|---|
    | DYNAMIC_ASSETS_WEBHOOK_URLS | comma-separated http(s) endpoints that receive the events |
    | DYNAMIC_ASSETS_WEBHOOK_SECRET | the HMAC-SHA256 signing secret shared with the receivers |
    | DYNAMIC_ASSETS_WEBHOOK_CONNECT_TIMEOUT | seconds to connect to an endpoint (default 3) |
    | DYNAMIC_ASSETS_WEBHOOK_READ_TIMEOUT | seconds to wait for its response (default 5) |
    """

    urls_set: bool = False
    secret_set: bool = False
    connect_timeout: float = 3.0
    read_timeout: float = 5.0

    @property
    def enabled(self) -> bool:
        return self.urls_set and self.secret_set

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        return cls(
            urls_set=bool((env.get("DYNAMIC_ASSETS_WEBHOOK_URLS") or "").strip(" ,")),
            secret_set=bool(env.get("DYNAMIC_ASSETS_WEBHOOK_SECRET")),
            connect_timeout=_seconds(env, "DYNAMIC_ASSETS_WEBHOOK_CONNECT_TIMEOUT", 3.0),
            read_timeout=_seconds(env, "DYNAMIC_ASSETS_WEBHOOK_READ_TIMEOUT", 5.0),
        )


@dataclass(frozen=True)
class Settings:
    home: Path
    drive_root: Path
    config_path: Path
    db_url_set: bool
    onedrive: OneDriveSettings | None = None  # set: the drive is OneDrive through Graph
    mlflow_uri_set: bool = False  # MLFLOW_TRACKING_URI set; else a local store under home/mlflow
    provenance: ProvenanceSettings = ProvenanceSettings()  # signing key, TON anchoring
    webhooks: WebhookSettings = WebhookSettings()  # alert endpoints and signing secret (set?)
    max_concurrent_runs: int = field(default_factory=lambda: os.cpu_count() or 1)
    review_tz: str = "UTC"  # the weekly review's schedule runs Monday 09:00 in this time zone

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("DYNAMIC_ASSETS_HOME") or ".dynamic_assets").expanduser().absolute()
        drive = env.get("DYNAMIC_ASSETS_DRIVE")
        drive_root = (
            Path(drive).expanduser().absolute() if drive else home / "onedrive" / DEFAULT_DRIVE_ROOT
        )
        config = env.get("DYNAMIC_ASSETS_CONFIG")
        if config:
            config_path = Path(config).expanduser().absolute()
        else:
            local = Path("dynamic_assets.yaml").absolute()
            config_path = local if local.exists() else DEMO_CONFIG
        return cls(
            home=home,
            drive_root=drive_root,
            config_path=config_path,
            db_url_set=bool(env.get("SUPABASE_DB_URL")),
            onedrive=OneDriveSettings.from_env(env, home),
            mlflow_uri_set=bool(env.get("MLFLOW_TRACKING_URI")),
            provenance=ProvenanceSettings.from_env(env),
            webhooks=WebhookSettings.from_env(env),
            max_concurrent_runs=_max_concurrent_runs(env.get("DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS")),
            review_tz=_time_zone(env.get("DYNAMIC_ASSETS_REVIEW_TZ")),
        )

    @property
    def writable_config_path(self) -> Path:
        """Where `declare` writes: the configured file, never the packaged demo."""
        if self.config_path == DEMO_CONFIG:
            return Path("dynamic_assets.yaml").absolute()
        return self.config_path

    @property
    def pgdata(self) -> Path:
        return self.home / "postgres"
