"""The team's OneDrive through Microsoft Graph, behind the same `Drive` interface as the local folder.

- Listing: `list_tree(folder)` pages through `children`; `delta(link)` reads the delta feed of the
  root folder (`GET .../root:/<root>:/delta`), follows `@odata.nextLink` pages and ends with the
  `@odata.deltaLink` to resume from. Delta items carry no `parentReference.path`, so paths are
  rebuilt from item ids (folders seen in the feed, then a `GET /items/{id}` for an unknown one).
  `410 Gone` restarts the enumeration from the `Location` Graph gives (a resync).
- Downloads: `open(path)` returns a buffered stream that downloads in ranges with bounded memory,
  resumes a dropped connection with a `Range` request, and when the last byte arrives checks the
  size and every hash Graph reported (`quickXorHash`, `sha256Hash`, `sha1Hash`); a mismatch
  raises `ContentMismatch` (a `LoadError` naming the path), so a COPY reading the stream aborts
  and nothing from the file becomes visible.
- Uploads: `write_bytes` / `upload` use a simple PUT up to 4 MiB and an upload session above it,
  in chunks of a multiple of 320 KiB, resumed from `nextExpectedRanges` after a failed chunk,
  with `@microsoft.graph.conflictBehavior` = `fail` unless overwriting is asked for.
- Faults: 429 and 503 honour `Retry-After`; other 5xx, connection errors and timeouts retry with
  exponential backoff and jitter (tenacity), a bounded number of times; a 401 gets one fresh
  token and one retry. At most `max_parallel_downloads` downloads are open at once.

No token, secret or pre-authenticated URL (download and upload URLs carry a token in their
query) appears in a message: URLs are shown without their query string.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.client
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

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

from dynamic_assets.drive.base import DriveItem
from dynamic_assets.drive.graph.auth import (
    DEFAULT_AUTHORITY_HOST,
    DEFAULT_GRAPH_URL,
    AuthError,
    ClientCredentials,
    DeviceCodeLogin,
    TokenProvider,
    ca_bundle,
)
from dynamic_assets.drive.graph.quickxor import QuickXorHash
from dynamic_assets.formats.errors import LoadError

log = logging.getLogger(__name__)

KIND = "onedrive"
DEFAULT_ROOT = "DynamicCapital/ai-training"
SIMPLE_UPLOAD_LIMIT = 4 << 20
UPLOAD_UNIT = 320 * 1024  # upload session fragments must be a multiple of 320 KiB
DEFAULT_UPLOAD_CHUNK = 32 * UPLOAD_UNIT  # 10 MiB
READ_CHUNK = 1 << 20
SKIP_AHEAD = 256 << 10  # a forward seek up to this far reads on instead of a new request
ITEM_FIELDS = (
    "id,name,size,eTag,cTag,file,folder,package,deleted,root,parentReference,"
    "lastModifiedDateTime,lastModifiedBy"
)
HASH_KEYS = ("quickXorHash", "sha256Hash", "sha1Hash")
_TRANSFER_ERRORS = (
    urllib3.exceptions.HTTPError,
    requests.exceptions.RequestException,
    http.client.HTTPException,
    OSError,
)


# ---------------------------------------------------------------- errors


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


class ContentMismatch(LoadError):
    """The downloaded bytes differ from what Graph reported (size or hash)."""


class _Transient(Exception):
    """A failure worth retrying: 429, 5xx, a dropped connection, a timeout, a stale token."""

    def __init__(
        self, what: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.what = what
        self.status = status
        self.retry_after = retry_after
        super().__init__(what)


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


def _redact_http_logs() -> None:
    target = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_FILTER not in target.filters:
        target.addFilter(_URLLIB3_FILTER)


def redact(url: str) -> str:
    """The URL without its query string (download, upload and delta links carry tokens there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "…" if parts.query else "", ""))


def _retry_after(resp: requests.Response) -> float | None:
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


def _graph_error(resp: requests.Response) -> tuple[str | None, str]:
    try:
        err = resp.json().get("error") or {}
    except ValueError:
        err = {}
    if isinstance(err, str):  # OAuth-style {"error": "...", "error_description": "..."}
        return err, ""
    return err.get("code"), (err.get("message") or "").splitlines()[0][:300] if err else ""


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.fromtimestamp(0, UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def item_from_json(js: dict, path: str) -> DriveItem:
    """A `DriveItem` from a driveItem resource; `path` is relative to the drive root folder."""
    file = js.get("file") or {}
    is_folder = "folder" in js or "package" in js or not file
    hashes = {k: v for k, v in (file.get("hashes") or {}).items() if k in HASH_KEYS and v}
    user = ((js.get("lastModifiedBy") or {}).get("user") or {}).get("displayName")
    return DriveItem(
        item_id=str(js["id"]),
        path=path,
        name=js.get("name") or path.rsplit("/", 1)[-1],
        is_folder=is_folder,
        size=0 if is_folder else int(js.get("size") or 0),
        modified_at=_parse_time(js.get("lastModifiedDateTime")),
        etag=js.get("eTag") or js.get("cTag") or "",
        ctag=js.get("cTag"),
        hashes=hashes,
        modified_by=user,
    )


# ---------------------------------------------------------------- delta results


@dataclass(frozen=True)
class DeletedItem:
    """An item the delta feed reported deleted; `path` is known only for folders seen before."""

    item_id: str
    path: str | None
    is_folder: bool


@dataclass
class DeltaResult:
    """What changed under the drive root folder since a delta link.

    `items` holds the latest state of each added or changed file and folder (paths relative to the
    root folder), `deleted` the deleted ones. `link` is the `@odata.deltaLink` to resume from when
    `complete`; otherwise the `@odata.nextLink` of the page not read yet (the listing ran out of its
    time or page budget). `full` means the listing enumerates everything (no link given, or a
    resync), `resync` that Graph answered `410 Gone` and the enumeration started over.
    """

    items: list[DriveItem] = field(default_factory=list)
    deleted: list[DeletedItem] = field(default_factory=list)
    link: str = ""
    complete: bool = False
    full: bool = False
    resync: bool = False
    pages: int = 0


# ---------------------------------------------------------------- the drive


class GraphDrive:
    """A OneDrive (or SharePoint document library) folder through Microsoft Graph.

    `drive_id` addresses `/drives/{id}`, `user` a user's OneDrive (`/users/{user}/drive`), neither
    the signed-in user's own (`/me/drive`, delegated access only). `root` is the folder inside the
    drive that holds `datasets/`, `model-checkpoints/`, ... ; every path is relative to it.
    """

    kind = KIND

    def __init__(
        self,
        tokens: TokenProvider,
        *,
        drive_id: str | None = None,
        user: str | None = None,
        root: str = DEFAULT_ROOT,
        graph_url: str = DEFAULT_GRAPH_URL,
        session: requests.Session | None = None,
        max_attempts: int = 6,
        max_retry_after: float = 120.0,
        timeout: tuple[float, float] = (10.0, 60.0),
        max_parallel_downloads: int = 4,
        upload_chunk: int = DEFAULT_UPLOAD_CHUNK,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if upload_chunk <= 0 or upload_chunk % UPLOAD_UNIT:
            raise ValueError(f"upload_chunk must be a multiple of {UPLOAD_UNIT} bytes (320 KiB)")
        self.tokens = tokens
        self.graph_url = graph_url.rstrip("/")
        self.root = root.strip("/")
        if drive_id:
            self.drive_url = f"{self.graph_url}/drives/{quote(drive_id, safe='!')}"
            self._drive_label = f"drive {drive_id}"
        elif user:
            self.drive_url = f"{self.graph_url}/users/{quote(user, safe='@')}/drive"
            self._drive_label = f"{user}'s OneDrive"
        else:
            self.drive_url = f"{self.graph_url}/me/drive"
            self._drive_label = "the signed-in user's OneDrive"
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.timeout = timeout
        self.upload_chunk = upload_chunk
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_parallel_downloads)
        self.max_parallel_downloads = max_parallel_downloads
        self._session = session or self._new_session(max_parallel_downloads)
        _redact_http_logs()
        self._lock = threading.RLock()
        self._root_id: str | None = None
        self._folders: dict[str, tuple[str | None, str]] = {}  # folder id -> (parent id, name)
        self._resolved: dict[str, str | None] = {}  # folder id -> path (None: outside the root)
        self._delta_scope = "folder"
        self.stats = {"requests": 0, "retries": 0, "token_refreshes": 0, "resumes": 0}

    @staticmethod
    def _new_session(parallel: int) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=parallel + 4, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.verify = ca_bundle()
        session.headers["User-Agent"] = "dynamic-assets (Microsoft Graph drive)"
        return session

    def describe(self) -> str:
        return (
            f"OneDrive (Microsoft Graph) {self._drive_label}, folder /{self.root} "
            f"via {self.tokens.describe()}"
        )

    def __repr__(self) -> str:
        return f"GraphDrive({self.describe()!r})"

    # ------------------------------------------------------------ HTTP

    def _path_url(self, rel: str, action: str = "") -> str:
        full = "/".join(p for p in (self.root, rel.strip("/")) if p)
        suffix = f"/{action}" if action else ""
        if not full:
            return f"{self.drive_url}/root{suffix}"
        return f"{self.drive_url}/root:/{quote(full, safe='/')}:{suffix}"

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after
        return _BACKOFF(state)

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._before_sleep,
        )

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats["retries"] += 1
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        log.warning(
            "Graph: %s; retry %d/%d in %.1f s",
            getattr(exc, "what", type(exc).__name__),
            state.attempt_number,
            self.max_attempts - 1,
            wait,
        )

    def _request(
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
            for attempt in self._retrying():
                with attempt:
                    resp = self._send_once(
                        method, url, label, auth, headers, stream, refresh, **kwargs
                    )
        except _Transient as exc:
            raise GraphError(
                f"{label}: {exc.what} (gave up after {self.max_attempts} attempts)",
                status=exc.status,
            ) from None
        if resp.status_code in expect:
            return resp
        code, message = _graph_error(resp)
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

    def _send_once(self, method, url, label, auth, headers, stream, refresh, **kwargs):
        h = dict(headers or {})
        if auth:
            token = self.tokens.token(force_refresh=refresh["next"])
            if refresh["next"]:
                self.stats["token_refreshes"] += 1
                refresh["next"] = False
            h["Authorization"] = f"Bearer {token}"
        self.stats["requests"] += 1
        try:
            resp = self._session.request(
                method, url, headers=h, stream=stream, timeout=self.timeout, **kwargs
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise _Transient(f"{label}: {type(exc).__name__}") from None
        status = resp.status_code
        if status == 401 and auth and not refresh["done"]:
            # The token expired or was revoked early: one fresh token, one more try.
            resp.close()
            refresh["next"] = refresh["done"] = True
            raise _Transient(f"{label}: HTTP 401, refreshing the token", status=401, retry_after=0)
        if status in (429, 503):
            after = _retry_after(resp)
            resp.close()
            if after is not None and after > self.max_retry_after:
                raise GraphError(
                    f"{label}: HTTP {status}, Graph asks to retry after {after:.0f} s "
                    f"(more than the {self.max_retry_after:.0f} s this client waits)",
                    status=status,
                )
            raise _Transient(f"{label}: HTTP {status}", status=status, retry_after=after)
        if status >= 500:
            resp.close()
            raise _Transient(f"{label}: HTTP {status}", status=status)
        return resp

    def _get_json(self, url: str, **kwargs) -> dict:
        resp = self._request("GET", url, **kwargs)
        try:
            return resp.json()
        except ValueError:
            raise GraphError(f"GET {redact(url)}: the answer is not JSON") from None

    # ------------------------------------------------------------ listing

    def item_json(self, path: str) -> dict:
        return self._get_json(self._path_url(path))

    def stat(self, path: str) -> DriveItem:
        """The item at `path` (relative to the root folder)."""
        return item_from_json(self.item_json(path), path.strip("/"))

    def list_tree(self, folder: str) -> Iterator[DriveItem]:
        """Every file and folder below `folder` (recursive), by listing `children` pages."""
        stack = [folder.strip("/")]
        first = True
        while stack:
            rel = stack.pop()
            url: str | None = self._path_url(rel, "children") + f"?$select={ITEM_FIELDS}"
            while url:
                try:
                    page = self._get_json(url)
                except GraphNotFound:
                    if first:
                        return  # the folder does not exist: nothing below it
                    break  # removed while listing
                first = False
                for js in page.get("value", []):
                    name = js.get("name") or ""
                    child = f"{rel}/{name}" if rel else name
                    item = item_from_json(js, child)
                    yield item
                    if item.is_folder and "folder" in js:
                        stack.append(child)
                url = page.get("@odata.nextLink")
            first = False

    # ------------------------------------------------------------ delta

    def _root_item_id(self) -> str:
        if self._root_id is None:
            self._root_id = str(self.item_json("")["id"])
        return self._root_id

    def _rel_from_parent_path(self, ref_path: str) -> str | None:
        marker = ref_path.find("root:")
        if marker < 0:
            return None
        full = unquote(ref_path[marker + len("root:") :]).strip("/")
        if not self.root:
            return full
        if full == self.root:
            return ""
        if full.startswith(self.root + "/"):
            return full[len(self.root) + 1 :]
        return None

    def _folder_path(self, folder_id: str | None, lookups: list[int]) -> str | None:
        """Path of a folder relative to the root folder, None when it lies outside."""
        if folder_id is None:
            return None
        if folder_id == self._root_id:
            return ""
        if folder_id in self._resolved:
            return self._resolved[folder_id]
        entry = self._folders.get(folder_id)
        if entry is not None:
            parent, name = entry
            parent_path = self._folder_path(parent, lookups)
            path = (
                None if parent_path is None else (f"{parent_path}/{name}" if parent_path else name)
            )
        else:
            # A folder the feed has not shown (a resumed page, or a folder outside the root).
            lookups[0] += 1
            try:
                js = self._get_json(
                    f"{self.drive_url}/items/{quote(folder_id, safe='')}"
                    "?$select=id,name,parentReference,root"
                )
            except GraphNotFound:
                return None
            ref = js.get("parentReference") or {}
            if "root" in js or not ref.get("path"):
                path = "" if not self.root else None
            else:
                parent_path = self._rel_from_parent_path(ref["path"])
                name = js.get("name") or ""
                if parent_path is None:
                    full = f"{unquote(ref['path'].split('root:', 1)[-1]).strip('/')}/{name}"
                    path = "" if full.strip("/") == self.root else None
                else:
                    path = f"{parent_path}/{name}" if parent_path else name
        self._resolved[folder_id] = path
        return path

    def delta(
        self,
        link: str | None = None,
        *,
        budget_seconds: float | None = None,
        max_pages: int | None = None,
    ) -> DeltaResult:
        """Changes under the root folder since `link` (a deltaLink, or a nextLink to resume a
        listing), or everything when `link` is None. Stops after `budget_seconds` or `max_pages`
        pages with `complete=False` and the nextLink of the next page in `link`."""
        started = time.monotonic()
        out = DeltaResult(full=link is None)
        with self._lock:
            root_id = self._root_item_id()
            url = link or self._initial_delta_url()
            changed: dict[str, DriveItem] = {}
            deleted: dict[str, DeletedItem] = {}
            lookups = [0]
            while True:
                try:
                    resp = self._request("GET", url, expect=(200, 410))
                except GraphError as exc:
                    if (
                        link is None
                        and out.pages == 0
                        and self._delta_scope == "folder"
                        and exc.status in (400, 501)
                    ):
                        # Some drives only track changes from the drive's root: read that feed
                        # and keep what lies under the root folder.
                        log.warning(
                            "Graph: delta on the folder refused (%s); using the drive root's delta",
                            exc.code,
                        )
                        self._delta_scope = "drive"
                        url = self._initial_delta_url()
                        continue
                    raise
                if resp.status_code == 410:
                    code, _ = _graph_error(resp)
                    location = resp.headers.get("Location")
                    resp.close()
                    log.warning(
                        "Graph: delta link expired (%s); enumerating again from scratch",
                        code or "410 Gone",
                    )
                    url = location or self._initial_delta_url()
                    out.resync = out.full = True
                    continue
                page = resp.json()
                out.pages += 1
                for js in page.get("value", []):
                    self._take(js, root_id, changed, deleted, lookups)
                next_link = page.get("@odata.nextLink")
                delta_link = page.get("@odata.deltaLink")
                if delta_link and not next_link:
                    out.link, out.complete = delta_link, True
                    break
                if not next_link:
                    raise GraphError(
                        f"GET {redact(url)}: a delta page with neither nextLink nor deltaLink"
                    )
                url = next_link
                if (
                    budget_seconds is not None and time.monotonic() - started >= budget_seconds
                ) or (max_pages is not None and out.pages >= max_pages):
                    out.link = next_link
                    break
            out.items = list(changed.values())
            out.deleted = list(deleted.values())
        log.info(
            "Graph delta: %d page(s), %d changed, %d deleted, %d folder lookup(s)%s",
            out.pages,
            len(out.items),
            len(out.deleted),
            lookups[0],
            "" if out.complete else " (to be continued)",
        )
        return out

    def _initial_delta_url(self) -> str:
        if self._delta_scope == "drive":
            return f"{self.drive_url}/root/delta?$select={ITEM_FIELDS}"
        return self._path_url("", "delta") + f"?$select={ITEM_FIELDS}"

    def _take(
        self, js: dict, root_id: str, changed: dict, deleted: dict, lookups: list[int]
    ) -> None:
        item_id = str(js.get("id") or "")
        if not item_id or "root" in js:
            return
        is_folder = "folder" in js or "package" in js
        parent_id = (js.get("parentReference") or {}).get("id")
        if "deleted" in js:
            path = None
            if item_id in self._folders or item_id in self._resolved:
                path = self._folder_path(item_id, lookups)
            elif js.get("name") and parent_id:
                parent_path = self._folder_path(parent_id, lookups)
                if parent_path is not None:
                    path = f"{parent_path}/{js['name']}" if parent_path else js["name"]
            self._forget_folder(item_id)
            changed.pop(item_id, None)
            deleted[item_id] = DeletedItem(item_id, path, is_folder)
            return
        if item_id == root_id:
            return
        name = js.get("name") or ""
        if is_folder:
            previous = self._folders.get(item_id)
            if previous is not None and previous != (parent_id, name):
                self._resolved.clear()  # a folder moved or was renamed: rebuild paths below it
            self._folders[item_id] = (parent_id, name)
        ref_path = (js.get("parentReference") or {}).get("path")
        if ref_path:
            parent_path = self._rel_from_parent_path(ref_path)
        else:
            parent_path = self._folder_path(parent_id, lookups)
        if parent_path is None:
            return  # outside the root folder
        path = f"{parent_path}/{name}" if parent_path else name
        deleted.pop(item_id, None)
        changed[item_id] = item_from_json(js, path)

    def _forget_folder(self, item_id: str) -> None:
        if self._folders.pop(item_id, None) is not None or item_id in self._resolved:
            self._resolved.clear()

    # ------------------------------------------------------------ downloads

    def open(self, path: str) -> BinaryIO:
        """The file's bytes as a buffered stream: downloaded in ranges, resumed after a dropped
        connection, and checked against Graph's size and hashes when the last byte arrives."""
        js = self.item_json(path)
        if "file" not in js:
            raise IsADirectoryError(f"{path} is a folder in the drive, not a file")
        raw = GraphDownload(self, path.strip("/"), js)
        return io.BufferedReader(raw, buffer_size=READ_CHUNK)

    def _download_response(self, download: GraphDownload, start: int) -> requests.Response:
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        for fresh in (False, True):
            url = download.download_url
            if url:
                resp = self._request(
                    "GET",
                    url,
                    auth=False,
                    headers=headers,
                    stream=True,
                    expect=(200, 206, 401, 403, 404, 410),
                )
                if resp.status_code in (401, 403, 404, 410) and not fresh:
                    # The pre-authenticated URL expired (they last about an hour): ask for a new one.
                    resp.close()
                    download.refresh_url()
                    continue
                if resp.status_code >= 400:
                    code, message = _graph_error(resp)
                    resp.close()
                    raise GraphError(
                        f"{download.path}: download refused (HTTP {resp.status_code} {code or ''}) {message}".rstrip(),
                        status=resp.status_code,
                        code=code,
                    )
            else:
                resp = self._request(
                    "GET",
                    f"{self.drive_url}/items/{quote(download.item_id, safe='')}/content",
                    headers=headers,
                    stream=True,
                    expect=(200, 206),
                )
            return resp
        raise GraphError(f"{download.path}: no download URL could be had")

    # ------------------------------------------------------------ uploads

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = False) -> DriveItem:
        """Write a file; refuse to replace an existing one unless `overwrite` (FileExistsError)."""
        if len(data) <= SIMPLE_UPLOAD_LIMIT:
            behaviour = "replace" if overwrite else "fail"
            url = (
                self._path_url(path, "content") + f"?@microsoft.graph.conflictBehavior={behaviour}"
            )
            try:
                resp = self._request(
                    "PUT",
                    url,
                    data=data,
                    headers={"Content-Type": "application/octet-stream"},
                    expect=(200, 201),
                )
            except GraphConflict:
                raise GraphConflict(f"{path} already exists in the drive", status=409) from None
            return item_from_json(resp.json(), path.strip("/"))
        return self.upload(path, io.BytesIO(data), len(data), overwrite=overwrite)

    def upload(
        self, path: str, stream: BinaryIO, size: int, *, overwrite: bool = False
    ) -> DriveItem:
        """Upload `size` bytes from `stream` through an upload session, chunk by chunk (memory
        bounded by one chunk). A failed chunk is resumed from the ranges the session still expects."""
        behaviour = "replace" if overwrite else "fail"
        try:
            session = self._request(
                "POST",
                self._path_url(path, "createUploadSession"),
                json={"item": {"@microsoft.graph.conflictBehavior": behaviour}},
                expect=(200,),
            ).json()
        except GraphConflict:
            raise GraphConflict(f"{path} already exists in the drive", status=409) from None
        upload_url = session["uploadUrl"]
        state = _UploadState(
            path, stream, size, _first_expected(session.get("nextExpectedRanges")) or 0
        )
        try:
            while True:
                result = None
                for attempt in self._retrying():
                    with attempt:
                        result = self._send_chunk(upload_url, state)
                if result is not None:
                    return item_from_json(result, path.strip("/"))
        except _Transient as exc:
            self._cancel_upload(upload_url)
            raise GraphError(
                f"upload of {path} failed at byte {state.offset:,} of {size:,}: {exc.what}",
                status=exc.status,
            ) from None
        except BaseException:
            self._cancel_upload(upload_url)
            raise

    def _send_chunk(self, upload_url: str, state: _UploadState) -> dict | None:
        """Send the next fragment; returns the driveItem when the upload is complete."""
        if state.resync:
            state.offset = self._upload_offset(upload_url, state)
            state.resync = False
            self.stats["resumes"] += 1
            if state.offset is None:  # nothing missing: the last fragment did arrive
                return self.item_json(state.path)
        start = state.offset
        length = min(self.upload_chunk, state.size - start)
        chunk = state.read(start, length)
        headers = {
            "Content-Length": str(length),
            "Content-Range": f"bytes {start}-{start + length - 1}/{state.size}",
        }
        self.stats["requests"] += 1
        try:
            resp = self._session.put(upload_url, data=chunk, headers=headers, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            state.resync = True
            raise _Transient(f"fragment at byte {start:,}: {type(exc).__name__}") from None
        status = resp.status_code
        if status == 202:
            state.offset = _first_expected(resp.json().get("nextExpectedRanges"))
            if state.offset is None:
                state.offset = start + length
            return None
        if status in (200, 201):
            return resp.json()
        if status == 409:
            code, message = _graph_error(resp)
            raise GraphConflict(
                f"{state.path} already exists in the drive ({code or 'conflict'})", status=409
            )
        if status in (416, 429) or status >= 500:
            state.resync = True
            raise _Transient(
                f"fragment at byte {start:,}: HTTP {status}",
                status=status,
                retry_after=_retry_after(resp),
            )
        if status == 404:
            raise GraphError(f"upload of {state.path}: the upload session expired", status=404)
        code, message = _graph_error(resp)
        raise GraphError(
            f"upload of {state.path}: fragment at byte {start:,} refused: HTTP {status} {code or ''} {message}".rstrip(),
            status=status,
            code=code,
        )

    def _upload_offset(self, upload_url: str, state: _UploadState) -> int | None:
        try:
            resp = self._session.get(upload_url, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            state.resync = True
            raise _Transient(f"upload status: {type(exc).__name__}") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            state.resync = True
            raise _Transient(f"upload status: HTTP {resp.status_code}", status=resp.status_code)
        if resp.status_code == 404:
            raise GraphError(f"upload of {state.path}: the upload session expired", status=404)
        return _first_expected(resp.json().get("nextExpectedRanges"))

    def _cancel_upload(self, upload_url: str) -> None:
        with contextlib.suppress(requests.RequestException):
            self._session.delete(upload_url, timeout=self.timeout)


_BACKOFF = wait_exponential_jitter(initial=0.5, max=30.0, exp_base=2, jitter=0.5)


def _first_expected(ranges: list[str] | None) -> int | None:
    if not ranges:
        return None
    return int(str(ranges[0]).split("-", 1)[0])


class _UploadState:
    def __init__(self, path: str, stream: BinaryIO, size: int, offset: int) -> None:
        self.path = path
        self.stream = stream
        self.size = size
        self.offset: int | None = offset
        self.resync = False
        self._seekable = bool(getattr(stream, "seekable", lambda: False)())
        self._buffer_start = -1
        self._buffer = b""
        self._stream_pos = 0

    def read(self, start: int, length: int) -> bytes:
        if self._buffer_start <= start and start + length <= self._buffer_start + len(self._buffer):
            off = start - self._buffer_start
            return self._buffer[off : off + length]
        if self._seekable:
            self.stream.seek(start)
        elif start != self._stream_pos:
            raise GraphError(
                f"upload of {self.path}: cannot go back to byte {start:,} of a stream that does not seek"
            )
        data = self.stream.read(length)
        if len(data) != length:
            raise GraphError(
                f"upload of {self.path}: the source ended at byte {start + len(data):,}, expected {self.size:,}"
            )
        self._stream_pos = start + length
        self._buffer_start, self._buffer = start, data
        return data


# ---------------------------------------------------------------- the download stream


class GraphDownload(io.RawIOBase):
    """A file in the drive as a raw, seekable byte stream (use it through `io.BufferedReader`).

    Sequential reads are one streaming GET; a dropped connection resumes with `Range` from the
    current position (bounded, with backoff). While every byte has been read in order, the bytes
    are hashed; when the last one arrives the size and the hashes Graph reported are compared and
    `ContentMismatch` is raised on a difference. Random access (Parquet footers) opens a ranged
    request per jump; such a stream is checked by the caller's sequential pass instead.
    """

    def __init__(self, drive: GraphDrive, path: str, item: dict) -> None:
        super().__init__()
        self._drive = drive
        self.path = path
        self.item_id = str(item["id"])
        self.size = int(item.get("size") or 0)
        self.expected = {
            k: v
            for k, v in ((item.get("file") or {}).get("hashes") or {}).items()
            if k in HASH_KEYS and v
        }
        self.download_url: str | None = item.get("@microsoft.graph.downloadUrl")
        self._resp: requests.Response | None = None
        self._holding_slot = False
        self._pos = 0
        self._hashed = 0  # bytes hashed in order from the start
        self._in_order = True
        self._qx = QuickXorHash() if "quickXorHash" in self.expected else None
        self._sha256 = hashlib.sha256() if "sha256Hash" in self.expected else None
        self._sha1 = hashlib.sha1() if "sha1Hash" in self.expected else None
        self.verified = False
        self.resumes = 0

    # -- io.RawIOBase

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError(f"{self.path}: negative seek position {target}")
        if target != self._pos:
            if (
                self._resp is not None
                and self._pos < target <= self._pos + SKIP_AHEAD
                and self._in_order
            ):
                while self._pos < target:  # read on: cheaper than a new request
                    if not self._read_some(min(READ_CHUNK, target - self._pos)):
                        break
            else:
                self._drop()
                self._pos = target
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        data = self._read_some(len(view))
        n = len(data)
        view[:n] = data
        return n

    def close(self) -> None:
        self._drop()
        super().close()

    # -- transfer

    def refresh_url(self) -> None:
        js = self._drive._get_json(f"{self._drive.drive_url}/items/{quote(self.item_id, safe='')}")
        self.download_url = js.get("@microsoft.graph.downloadUrl")

    def _open(self) -> None:
        if not self._holding_slot:
            if not self._drive._slots.acquire(timeout=600):
                raise GraphError(
                    f"{self.path}: waited 10 minutes for a download slot "
                    f"({self._drive.max_parallel_downloads} downloads already open)"
                )
            self._holding_slot = True
        try:
            resp = self._drive._download_response(self, self._pos)
        except BaseException:
            self._release()
            raise
        if self._pos and resp.status_code == 200:
            # The server ignored Range: skip what was already delivered.
            skip = self._pos
            while skip:
                chunk = resp.raw.read(min(skip, READ_CHUNK), decode_content=False)
                if not chunk:
                    resp.close()
                    self._release()
                    raise _Transient(
                        f"{self.path}: connection closed while skipping to byte {self._pos:,}"
                    )
                skip -= len(chunk)
        elif resp.status_code == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {self._pos}-"):
                resp.close()
                self._release()
                raise GraphError(
                    f"{self.path}: asked for bytes from {self._pos:,}, got {content_range or 'no range'}"
                )
        self._resp = resp

    def _drop(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        self._release()

    def _release(self) -> None:
        if self._holding_slot:
            self._holding_slot = False
            self._drive._slots.release()

    def _read_some(self, n: int) -> bytes:
        """Up to `n` bytes from the current position; b"" at the end (after checking the file)."""
        if self._pos >= self.size:
            if self._resp is not None and self._in_order and self._hashed == self.size:
                try:
                    extra = self._resp.raw.read(1, decode_content=False)
                except _TRANSFER_ERRORS:
                    extra = b""
                if extra:
                    self._drop()
                    raise ContentMismatch(
                        self.path,
                        f"the download is longer than the {self.size:,} bytes Graph reported; "
                        "nothing from the file was kept",
                    )
            self._finish_in_order()
            self._drop()
            return b""
        n = min(n, self.size - self._pos)
        data = b""
        try:
            for attempt in self._drive._retrying():
                with attempt:
                    data = self._fetch(n)
        except _Transient as exc:
            raise GraphError(
                f"{exc.what} (gave up after {self._drive.max_attempts} attempts)"
            ) from None
        if self._in_order and self._pos == self._hashed:
            for h in (self._qx, self._sha256, self._sha1):
                if h is not None:
                    h.update(data)
            self._hashed += len(data)
        elif self._pos != self._hashed:
            self._in_order = False
        self._pos += len(data)
        if self._pos >= self.size:
            self._finish_in_order()
        return data

    def _fetch(self, n: int) -> bytes:
        """One read from the open response (opened at the current position if needed)."""
        if self._resp is None:
            self._open()
        try:
            data = self._resp.raw.read(n, decode_content=False)
        except _TRANSFER_ERRORS as exc:
            self._lost(f"connection lost at byte {self._pos:,} ({type(exc).__name__})")
        if not data:
            self._lost(f"connection closed at byte {self._pos:,} of {self.size:,}")
        return data

    def _lost(self, what: str):
        self._drop()
        self.resumes += 1
        self._drive.stats["resumes"] += 1
        raise _Transient(f"{self.path}: {what}; resuming with a Range request")

    def _finish_in_order(self) -> None:
        if self.verified or not self._in_order or self._hashed != self._pos:
            return
        if self._hashed != self.size:
            return
        problems = []
        checks = (
            ("quickXorHash", self._qx, lambda h: h.b64digest()),
            ("sha256Hash", self._sha256, lambda h: h.hexdigest()),
            ("sha1Hash", self._sha1, lambda h: h.hexdigest()),
        )
        for key, h, show in checks:
            if h is None:
                continue
            got = show(h)
            want = self.expected[key]
            same = got == want if key == "quickXorHash" else got.lower() == want.lower()
            if not same:
                problems.append(f"{key} is {got}, Graph reported {want}")
        if problems:
            self._drop()
            raise ContentMismatch(
                self.path,
                "the downloaded bytes do not match the drive's record ("
                + "; ".join(problems)
                + "); nothing from the file was kept",
            )
        self.verified = True


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class GraphConfig:
    """Everything needed to reach the drive. The secret never shows in a repr."""

    tenant_id: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    drive_id: str | None = None
    user: str | None = None
    root: str = DEFAULT_ROOT
    graph_url: str = DEFAULT_GRAPH_URL
    authority_host: str = DEFAULT_AUTHORITY_HOST
    token_cache: str | None = None

    def token_provider(self) -> TokenProvider:
        if self.client_secret:
            return ClientCredentials(
                self.tenant_id,
                self.client_id,
                self.client_secret,
                authority_host=self.authority_host,
                graph_url=self.graph_url,
            )
        if not self.token_cache:
            raise AuthError(
                "OneDrive access needs ONEDRIVE_CLIENT_SECRET (app-only) or a sign-in saved by "
                "`dynamic-assets onedrive login` (delegated)"
            )
        return DeviceCodeLogin(
            self.tenant_id,
            self.client_id,
            self.token_cache,
            authority_host=self.authority_host,
            graph_url=self.graph_url,
        )


_SHARED: dict[GraphConfig, GraphDrive] = {}
_SHARED_LOCK = threading.Lock()


def graph_drive(config: GraphConfig) -> GraphDrive:
    """The process's `GraphDrive` for `config`: sensor ticks and steps running in one process share
    its MSAL token cache (a token is requested about once an hour, not per tick), its connection
    pool and its map of folder ids to paths."""
    with _SHARED_LOCK:
        drive = _SHARED.get(config)
        if drive is None:
            drive = _SHARED[config] = GraphDrive(
                config.token_provider(),
                drive_id=config.drive_id,
                user=config.user,
                root=config.root,
                graph_url=config.graph_url,
            )
        return drive
