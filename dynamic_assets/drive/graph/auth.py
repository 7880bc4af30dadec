"""Access tokens for Microsoft Graph, from MSAL.

Two providers with one method, `token(force_refresh=False) -> str`:

- `ClientCredentials` (app-only): `msal.ConfidentialClientApplication` with a tenant id, client id
  and client secret, scope `<graph resource>/.default`. MSAL keeps the token in its in-memory cache
  and hands out the cached one until it is close to expiry, so a token is requested once an
  hour, never per call.
- `DeviceCodeLogin` (delegated): `msal.PublicClientApplication` whose `SerializableTokenCache`
  lives in a file with owner-only permissions (`<DYNAMIC_ASSETS_HOME>/msal_token_cache.json`).
  `login()` runs the device-code flow once (the `dynamic-assets onedrive login` command); later
  `token()` calls refresh silently from the cached refresh token and never prompt.

The scope names the Graph resource of the cloud, not the host requests go to: the national-cloud
Graph hosts are their own resources (`GRAPH_RESOURCES`, from Microsoft's "national cloud
deployments"), any other host (a gateway, a proxy, a local server) stands for the public
`https://graph.microsoft.com`, and `ONEDRIVE_GRAPH_SCOPE` overrides the choice.

Secrets and tokens never appear in an exception message, a log line or a repr.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
DELEGATED_SCOPES = ("Files.Read.All",)
DEFAULT_GRAPH_RESOURCE = "https://graph.microsoft.com"
# Graph service root host -> the resource a token is asked for (global service, US Government L4
# (GCC High), US Government L5 (DoD), China operated by 21Vianet).
GRAPH_RESOURCES = {
    "graph.microsoft.com": "https://graph.microsoft.com",
    "graph.microsoft.us": "https://graph.microsoft.us",
    "dod-graph.microsoft.us": "https://dod-graph.microsoft.us",
    "microsoftgraph.chinacloudapi.cn": "https://microsoftgraph.chinacloudapi.cn",
}
TOKEN_CACHE_FILE = "msal_token_cache.json"


class AuthError(Exception):
    """No access token could be had; the message says why and what to do, never a secret."""


class TokenProvider(Protocol):
    def token(self, *, force_refresh: bool = False) -> str:
        """A bearer token for Graph; `force_refresh` after Graph refused the cached one."""
        ...

    def describe(self) -> str: ...


def ca_bundle() -> str | bool:
    """The CA bundle to verify TLS with: the usual environment variables, else the default store.

    requests itself reads `REQUESTS_CA_BUNDLE` and `CURL_CA_BUNDLE`; `SSL_CERT_FILE` (OpenSSL's
    variable) is honoured here too. Verification is never turned off.
    """
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name)
        if value and os.path.exists(value):
            return value
    return True


def graph_resource(graph_url: str, graph_scope: str | None = None) -> str:
    """The resource Graph tokens are for: the resource of `graph_scope` when given (`.default`
    or not), else that of a known Graph host, else the public cloud's."""
    if graph_scope:
        return graph_scope.strip().removesuffix("/.default").rstrip("/")
    host = (urlsplit(graph_url).hostname or "").lower()
    return GRAPH_RESOURCES.get(host, DEFAULT_GRAPH_RESOURCE)


def app_only_scope(graph_url: str, override: str | None = None) -> str:
    """The app-only scope: `https://graph.microsoft.com/.default` in the public cloud."""
    return f"{graph_resource(graph_url, override)}/.default"


def _delegated_scopes(
    graph_url: str, scopes: tuple[str, ...], override: str | None = None
) -> list[str]:
    base = graph_resource(graph_url, override) + "/"
    # offline_access (the refresh token) is added by MSAL itself; it refuses it in the list.
    return [s if "://" in s else base + s for s in scopes if s != "offline_access"]


def _authority_kwargs(authority_host: str, tenant_id: str) -> dict:
    host = authority_host.rstrip("/")
    kwargs: dict = {"authority": f"{host}/{tenant_id}"}
    if urlsplit(host).hostname != urlsplit(DEFAULT_AUTHORITY_HOST).hostname:
        # A sovereign cloud or a local test authority: no instance discovery against
        # login.microsoftonline.com; MSAL reads <authority>/v2.0/.well-known/openid-configuration.
        kwargs["instance_discovery"] = False
    return kwargs


def _error_text(result: dict | None) -> str:
    if not result:
        return "no answer from the token endpoint"
    code = result.get("error") or "unknown_error"
    desc = (result.get("error_description") or "").splitlines()
    first = desc[0] if desc else ""
    return f"{code}: {first}".rstrip(": ")


def _http_session():
    import requests

    session = requests.Session()
    session.verify = ca_bundle()
    return session


class _MsalProvider:
    """What both providers share: the MSAL application built on first use around a token cache
    (`_new_cache`), and the checks on a token result. `_save_cache` keeps the cache after MSAL
    changed it; the in-memory cache of app-only access needs nothing."""

    def __init__(self, tenant_id: str, client_id: str, authority_host: str) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority_host = authority_host
        self._app = None
        self._cache = None
        self._lock = threading.Lock()
        self.requests = 0  # token endpoint round trips made (for tests and metrics)

    def _new_cache(self):
        import msal

        return msal.TokenCache()

    def _new_application(self, msal, **kwargs):
        raise NotImplementedError

    def _save_cache(self) -> None:
        pass

    def _application(self):
        if self._app is None:
            import msal

            self._cache = self._new_cache()
            try:
                self._app = self._new_application(
                    msal,
                    token_cache=self._cache,
                    http_client=_http_session(),
                    **_authority_kwargs(self.authority_host, self.tenant_id),
                )
            except (ValueError, OSError) as exc:
                raise AuthError(
                    f"cannot reach the authority {self.authority_host}/{self.tenant_id}: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                ) from None
        return self._app

    def _issued(self, result: dict | None, refused: str, after: str = "") -> str:
        """The access token of an MSAL result, after counting a round trip and saving the cache;
        without one, AuthError saying `refused`, the token endpoint's error, then `after`."""
        if not result or "access_token" not in result:
            raise AuthError(f"{refused}{_error_text(result)}{after}")
        if result.get("token_source") == "identity_provider":
            self.requests += 1
        self._save_cache()
        return result["access_token"]


class ClientCredentials(_MsalProvider):
    """App-only access: client credentials of an Entra app registration."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        *,
        authority_host: str = DEFAULT_AUTHORITY_HOST,
        graph_url: str = DEFAULT_GRAPH_URL,
        graph_scope: str | None = None,
    ) -> None:
        if not (tenant_id and client_id and client_secret):
            raise AuthError(
                "app-only access needs ONEDRIVE_TENANT_ID, ONEDRIVE_CLIENT_ID and ONEDRIVE_CLIENT_SECRET"
            )
        super().__init__(tenant_id, client_id, authority_host)
        self._secret = client_secret
        self.scope = app_only_scope(graph_url, graph_scope)

    def __repr__(self) -> str:
        return f"ClientCredentials(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, client_secret=<hidden>)"

    def describe(self) -> str:
        return f"app-only (client {self.client_id}, tenant {self.tenant_id})"

    def _new_application(self, msal, **kwargs):
        return msal.ConfidentialClientApplication(
            self.client_id, client_credential=self._secret, **kwargs
        )

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            app = self._application()
            if force_refresh:
                self._drop_cached(app)
            try:
                result = app.acquire_token_for_client(scopes=[self.scope])
            except Exception as exc:  # network errors from MSAL's HTTP client
                raise AuthError(
                    f"token request to {self.authority_host} failed: {type(exc).__name__}"
                ) from None
            return self._issued(result, f"no app-only token for client {self.client_id}: ")

    @staticmethod
    def _drop_cached(app) -> None:
        cache = app.token_cache
        for entry in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(entry)


class DeviceCodeLogin(_MsalProvider):
    """Delegated access: a person signs in once with the device-code flow; the token cache is kept
    in a file readable by its owner only, and later runs refresh silently."""

    def __init__(
        self,
        tenant_id: str,
        client_id: str,
        cache_path: Path | str,
        *,
        authority_host: str = DEFAULT_AUTHORITY_HOST,
        graph_url: str = DEFAULT_GRAPH_URL,
        scopes: tuple[str, ...] = DELEGATED_SCOPES,
        graph_scope: str | None = None,
    ) -> None:
        if not (tenant_id and client_id):
            raise AuthError("delegated access needs ONEDRIVE_TENANT_ID and ONEDRIVE_CLIENT_ID")
        super().__init__(tenant_id, client_id, authority_host)
        self.cache_path = Path(cache_path)
        self.scopes = _delegated_scopes(graph_url, scopes, graph_scope)

    def __repr__(self) -> str:
        return f"DeviceCodeLogin(client_id={self.client_id!r}, cache={str(self.cache_path)!r})"

    def describe(self) -> str:
        return f"delegated (client {self.client_id}, token cache {self.cache_path})"

    def _new_application(self, msal, **kwargs):
        return msal.PublicClientApplication(self.client_id, **kwargs)

    # -- the token cache file

    def _new_cache(self):
        import msal

        cache = msal.SerializableTokenCache()
        if self.cache_path.exists():
            mode = self.cache_path.stat().st_mode & 0o777
            if mode & 0o077:
                self.cache_path.chmod(0o600)  # never leave refresh tokens readable by others
            cache.deserialize(self.cache_path.read_text(encoding="utf-8"))
        return cache

    def _save_cache(self) -> None:
        if self._cache is None or not self._cache.has_state_changed:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(f".{self.cache_path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self._cache.serialize())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.cache_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._cache.has_state_changed = False

    def accounts(self) -> list[str]:
        """The signed-in accounts in the cache (user names only)."""
        with self._lock:
            return [a.get("username", "?") for a in self._application().get_accounts()]

    def login(self, show: Callable[[str], None] = print) -> str:
        """Run the device-code flow: `show` gets the instruction (a URL and a code) for the person.

        Returns the signed-in user name. The token cache file is written with mode 0600.
        """
        with self._lock:
            app = self._application()
            flow = app.initiate_device_flow(scopes=self.scopes)
            if "user_code" not in flow:
                raise AuthError(f"the device-code flow did not start: {_error_text(flow)}")
            show(flow["message"])
            result = app.acquire_token_by_device_flow(flow)
            if not result or "access_token" not in result:
                raise AuthError(f"sign-in did not complete: {_error_text(result)}")
            self.requests += 1
            self._save_cache()
            claims = result.get("id_token_claims") or {}
            return claims.get("preferred_username") or claims.get("name") or "signed in"

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            app = self._application()
            accounts = app.get_accounts()
            if not accounts:
                raise AuthError(
                    f"not signed in to OneDrive: run `dynamic-assets onedrive login` "
                    f"(token cache {self.cache_path})"
                )
            result = app.acquire_token_silent_with_error(
                self.scopes, account=accounts[0], force_refresh=force_refresh
            )
            return self._issued(
                result,
                "the saved sign-in no longer works (",
                "): run `dynamic-assets onedrive login` again",
            )


def read_cache_accounts(cache_path: Path) -> list[str]:
    """User names in a token cache file, without contacting anyone (for `onedrive status`)."""
    if not cache_path.exists():
        return []
    try:
        data = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return sorted({a.get("username", "?") for a in (data.get("Account") or {}).values()})
