"""Requests to Microsoft Graph: one `requests` session, errors, retries and log redaction.

429 and 503 honour `Retry-After`; other 5xx, connection errors and timeouts retry with exponential
backoff and jitter (tenacity), a bounded number of times; a 401 gets one fresh token and one
retry. No token, secret or pre-authenticated URL appears in a message: URLs are shown without
their query string, and urllib3's request log lines lose their query strings too.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from dynamic_assets.drive.graph.auth import TokenProvider, ca_bundle

log = logging.getLogger(__name__)

TRANSFER_ERRORS = (
    urllib3.exceptions.HTTPError,
    requests.exceptions.RequestException,
    http.client.HTTPException,
    OSError,
)
"""What a read from an open response raises when the connection is lost."""

BACKOFF = wait_exponential_jitter(initial=0.5, max=30.0, exp_base=2, jitter=0.5)


class GraphError(Exception):
    """Graph refused or failed a request; names the method, the URL without its query, the HTTP
    status and Graph's error code and message."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class GraphNotFound(GraphError, FileNotFoundError):
    """The item does not exist (404)."""


class GraphConflict(GraphError, FileExistsError):
    """An item with that name exists and overwriting was not asked for (409)."""


class Transient(Exception):
    """A failure worth retrying: 429, 5xx, a dropped connection, a timeout, a stale token."""

    def __init__(
        self,
        what: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        self.what = what
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(what)


@dataclass(frozen=True)
class SyncEvent:
    """Something the sync met, as it happened: `throttled` (a 429 or 503 retried after `seconds`),
    `resync_410` (an expired delta link, the enumeration started over) or `quota`. `detail` holds
    the HTTP status and Graph's code, never a URL, token or value."""

    kind: str
    detail: dict = field(default_factory=dict)
    seconds: float | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


SyncRecorder = Callable[[SyncEvent], None]
"""Where a drive's sync events go (e.g. a table); a recorder that fails loses its event only."""


class _RedactQueries(logging.Filter):
    """Takes query strings out of urllib3's request log lines (its DEBUG log shows each request
    line, and download and upload URLs carry a token in their query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and "?" in a for a in record.args
        ):
            record.args = tuple(
                a.split("?", 1)[0] + "?…" if isinstance(a, str) and "?" in a else a
                for a in record.args
            )
        return True


_URLLIB3_FILTER = _RedactQueries()


def redact_http_logs() -> None:
    """Install the filter that keeps query strings out of urllib3's log (once per process)."""
    target = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_FILTER not in target.filters:
        target.addFilter(_URLLIB3_FILTER)


def redact(url: str) -> str:
    """The URL without its query string (download, upload and delta links carry tokens there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "…" if parts.query else "", ""))


def retry_after(resp: requests.Response) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), None without one."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def graph_error(resp: requests.Response) -> tuple[str | None, str]:
    """Graph's error code and the first line of its message (OAuth-style errors too)."""
    try:
        err = resp.json().get("error") or {}
    except ValueError:
        err = {}
    if isinstance(err, str):  # OAuth-style {"error": "...", "error_description": "..."}
        return err, ""
    return err.get("code"), (err.get("message") or "").splitlines()[0][:300] if err else ""


def new_session(parallel: int) -> requests.Session:
    """A session with a connection pool for `parallel` downloads plus a few listings, verifying
    TLS against `ca_bundle()`."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=parallel + 4, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = ca_bundle()
    session.headers["User-Agent"] = "dynamic-assets (Microsoft Graph drive)"
    return session


class GraphHttp:
    """Authorised requests to Graph with retries; `stats` counts requests, retries, token
    refreshes and resumed transfers."""

    def __init__(
        self,
        tokens: TokenProvider,
        session: requests.Session,
        *,
        max_attempts: int = 6,
        max_retry_after: float = 120.0,
        timeout: tuple[float, float] = (10.0, 60.0),
        sleep: Callable[[float], None] = time.sleep,
        recorder: SyncRecorder | None = None,
    ) -> None:
        self.tokens = tokens
        self.recorder = recorder
        self.session = session
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self._sleep = sleep
        self.stats = {"requests": 0, "retries": 0, "token_refreshes": 0, "resumes": 0}
        redact_http_logs()

    def record(self, event: SyncEvent) -> None:
        """Hand `event` to the recorder, if any; a failing recorder never fails a request."""
        if self.recorder is None:
            return
        try:
            self.recorder(event)
        except Exception as exc:  # noqa: BLE001 - recording is secondary to the transfer
            log.warning("Graph: a %s event was not recorded (%s)", event.kind, type(exc).__name__)

    def retrying(self) -> Retrying:
        """The retry loop for one operation: `Transient` failures are retried, the last one
        re-raised after `max_attempts`."""
        return Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(Transient),
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._before_sleep,
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return exc.retry_after
        return BACKOFF(state)

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats["retries"] += 1
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        if isinstance(exc, Transient) and exc.status in (429, 503):
            self.record(
                SyncEvent("throttled", {"status": exc.status, "code": exc.code}, float(wait))
            )
        log.warning(
            "Graph: %s; retry %d/%d in %.1f s",
            getattr(exc, "what", type(exc).__name__),
            state.attempt_number,
            self.max_attempts - 1,
            wait,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        auth: bool = True,
        headers: dict | None = None,
        stream: bool = False,
        expect: tuple[int, ...] = (200,),
        **kwargs,
    ) -> requests.Response:
        """Send one request with retries; returns a response whose status is in `expect`."""
        label = f"{method} {redact(url)}"
        refresh = {"next": False, "done": False}
        try:
            for attempt in self.retrying():
                with attempt:
                    resp = self._send_once(
                        method, url, label, auth, headers, stream, refresh, **kwargs
                    )
        except Transient as exc:
            raise GraphError(
                f"{label}: {exc.what} (gave up after {self.max_attempts} attempts)",
                status=exc.status,
            ) from None
        if resp.status_code in expect:
            return resp
        code, message = graph_error(resp)
        status = resp.status_code
        resp.close()
        text = (
            f"{label}: HTTP {status}"
            + (f" {code}" if code else "")
            + (f": {message}" if message else "")
        )
        if status == 404:
            raise GraphNotFound(text, status=status, code=code)
        if status == 409:
            raise GraphConflict(text, status=status, code=code)
        raise GraphError(text, status=status, code=code)

    def _send_once(
        self,
        method: str,
        url: str,
        label: str,
        auth: bool,
        headers: dict | None,
        stream: bool,
        refresh: dict[str, bool],
        **kwargs,
    ) -> requests.Response:
        h = dict(headers or {})
        if auth:
            token = self.tokens.token(force_refresh=refresh["next"])
            if refresh["next"]:
                self.stats["token_refreshes"] += 1
                refresh["next"] = False
            h["Authorization"] = f"Bearer {token}"
        self.stats["requests"] += 1
        try:
            resp = self.session.request(
                method, url, headers=h, stream=stream, timeout=self.timeout, **kwargs
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise Transient(f"{label}: {type(exc).__name__}") from None
        status = resp.status_code
        if status == 401 and auth and not refresh["done"]:
            # The token expired or was revoked early: one fresh token, one more try.
            resp.close()
            refresh["next"] = refresh["done"] = True
            raise Transient(f"{label}: HTTP 401, refreshing the token", status=401, retry_after=0)
        if status in (429, 503):
            after = retry_after(resp)
            code, _ = graph_error(resp)
            resp.close()
            if after is not None and after > self.max_retry_after:
                raise GraphError(
                    f"{label}: HTTP {status}, Graph asks to retry after {after:.0f} s "
                    f"(more than the {self.max_retry_after:.0f} s this client waits)",
                    status=status,
                )
            raise Transient(f"{label}: HTTP {status}", status=status, retry_after=after, code=code)
        if status >= 500:
            resp.close()
            raise Transient(f"{label}: HTTP {status}", status=status)
        return resp

    def get_json(self, url: str, **kwargs) -> dict:
        """GET `url` and parse the answer as JSON."""
        resp = self.request("GET", url, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise GraphError(f"GET {redact(url)}: the answer is not JSON") from None
