"""`GraphDrive`: the team's OneDrive behind the `Drive` interface, its configuration
(`GraphConfig`) and the process-wide instance per configuration (`graph_drive`).

The drive composes the pieces of this package: `http` (requests, retries, redaction), `delta`
(listing and the delta feed), `download` (verified, resumable reads) and `upload` (simple PUT and
upload sessions).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import quote

import requests

from dynamic_assets.drive.base import DriveItem
from dynamic_assets.drive.graph.auth import (
    DEFAULT_AUTHORITY_HOST,
    DEFAULT_GRAPH_URL,
    AuthError,
    ClientCredentials,
    DeviceCodeLogin,
    TokenProvider,
)
from dynamic_assets.drive.graph.delta import DeltaFeed, DeltaResult, list_tree
from dynamic_assets.drive.graph.download import Downloads
from dynamic_assets.drive.graph.http import GraphHttp, GraphNotFound, SyncRecorder, new_session
from dynamic_assets.drive.graph.items import DriveAddress, item_from_json
from dynamic_assets.drive.graph.upload import DEFAULT_UPLOAD_CHUNK, Uploads

KIND = "onedrive"
DEFAULT_ROOT = "DynamicCapital/ai-training"
QUOTA_FIELDS = ("total", "used", "remaining", "deleted", "state")


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
        recorder: SyncRecorder | None = None,
    ) -> None:
        self.tokens = tokens
        self.graph_url = graph_url.rstrip("/")
        self.root = root.strip("/")
        if drive_id:
            drive_url = f"{self.graph_url}/drives/{quote(drive_id, safe='!')}"
            self._drive_label = f"drive {drive_id}"
        elif user:
            drive_url = f"{self.graph_url}/users/{quote(user, safe='@')}/drive"
            self._drive_label = f"{user}'s OneDrive"
        else:
            drive_url = f"{self.graph_url}/me/drive"
            self._drive_label = "the signed-in user's OneDrive"
        self.drive_url = drive_url
        self.address = DriveAddress(drive_url, self.root)
        self.http = GraphHttp(
            tokens,
            session or new_session(max_parallel_downloads),
            max_attempts=max_attempts,
            max_retry_after=max_retry_after,
            timeout=timeout,
            sleep=sleep,
            recorder=recorder,
        )
        self.uploads = Uploads(self.http, self.address, upload_chunk)
        self.downloads = Downloads(self.http, self.address, max_parallel_downloads)
        self.feed = DeltaFeed(self.http, self.address)

    @property
    def stats(self) -> dict[str, int]:
        """Requests sent, retries, token refreshes and resumed transfers so far."""
        return self.http.stats

    @property
    def label(self) -> str:
        """Which drive this is (`drive <id>`, a user's OneDrive, the signed-in user's)."""
        return self._drive_label

    @property
    def recorder(self) -> SyncRecorder | None:
        """Where throttled requests and delta resyncs are recorded as they happen."""
        return self.http.recorder

    @recorder.setter
    def recorder(self, recorder: SyncRecorder | None) -> None:
        self.http.recorder = recorder

    @property
    def upload_chunk(self) -> int:
        return self.uploads.chunk

    @property
    def max_parallel_downloads(self) -> int:
        return self.downloads.max_parallel

    def describe(self) -> str:
        return (
            f"OneDrive (Microsoft Graph) {self._drive_label}, folder /{self.root} "
            f"via {self.tokens.describe()}"
        )

    def __repr__(self) -> str:
        return f"GraphDrive({self.describe()!r})"

    # -- listing

    def item_json(self, path: str) -> dict:
        """The driveItem resource at `path` (relative to the root folder)."""
        return self.http.get_json(self.address.path_url(path))

    def stat(self, path: str) -> DriveItem:
        """The item at `path` (relative to the root folder)."""
        return item_from_json(self.item_json(path), path.strip("/"))

    def list_tree(self, folder: str) -> Iterator[DriveItem]:
        """Every file and folder below `folder` (recursive), by listing `children` pages."""
        return list_tree(self.http, self.address, folder)

    def delta(
        self,
        link: str | None = None,
        *,
        budget_seconds: float | None = None,
        max_pages: int | None = None,
    ) -> DeltaResult:
        """Changes under the root folder since `link`; see `DeltaFeed.delta`."""
        return self.feed.delta(link, budget_seconds=budget_seconds, max_pages=max_pages)

    def quota(self) -> dict:
        """The drive's `quota` facet (`GET /drive`): bytes `total`, `used`, `remaining`,
        `deleted` (in the recycle bin) and `state` (normal, nearing, critical, exceeded)."""
        quota = self.http.get_json(self.drive_url).get("quota") or {}
        return {k: quota[k] for k in QUOTA_FIELDS if k in quota}

    # -- content

    def open(self, path: str) -> io.BufferedReader:
        """The file's bytes as a buffered stream, checked against Graph's size and hashes."""
        return self.downloads.open(path)

    def write_bytes(self, path: str, data: bytes, *, overwrite: bool = False) -> DriveItem:
        """Write a file; refuse to replace an existing one unless `overwrite` (FileExistsError)."""
        return self.uploads.write_bytes(path, data, overwrite=overwrite)

    def upload(
        self, path: str, stream: BinaryIO, size: int, *, overwrite: bool = False
    ) -> DriveItem:
        """Upload `size` bytes from `stream` through an upload session, chunk by chunk."""
        return self.uploads.upload(path, stream, size, overwrite=overwrite)

    def delete(self, path: str) -> None:
        """Remove a file (`DELETE /items/{id}`, into the drive's recycle bin): FileNotFoundError
        when it is not there, IsADirectoryError for a folder (Graph would delete all it holds)."""
        item = self.item_json(path)
        if "folder" in item:
            raise IsADirectoryError(f"{path} is a folder of the drive, not a file")
        try:
            self.http.request("DELETE", self.address.item_url(item["id"]), expect=(204,))
        except GraphNotFound:
            raise FileNotFoundError(f"{path} is no longer in the drive") from None


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
    graph_scope: str | None = None  # the token's resource; None: chosen from graph_url

    @classmethod
    def with_defaults(
        cls,
        *,
        graph_url: str | None = None,
        authority_host: str | None = None,
        graph_scope: str | None = None,
        **given: Any,
    ) -> GraphConfig:
        """A config from settings that may leave the Graph host, the sign-in host or the token's
        resource unset (None or empty): the public cloud's, and the scope chosen from the URL."""
        return cls(
            graph_url=graph_url or DEFAULT_GRAPH_URL,
            authority_host=authority_host or DEFAULT_AUTHORITY_HOST,
            graph_scope=graph_scope or None,
            **given,
        )

    def token_provider(self) -> TokenProvider:
        if self.client_secret:
            return ClientCredentials(
                self.tenant_id,
                self.client_id,
                self.client_secret,
                authority_host=self.authority_host,
                graph_url=self.graph_url,
                graph_scope=self.graph_scope,
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
            graph_scope=self.graph_scope,
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
