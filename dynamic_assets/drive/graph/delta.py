"""Listing the drive: `children` pages, and the delta feed with its cursor.

`list_tree` pages through `children` recursively. `DeltaFeed.delta(link)` reads the delta feed
of the root folder (`GET .../root:/<root>:/delta`), follows `@odata.nextLink` pages and ends with
the `@odata.deltaLink` to resume from. Delta items carry no `parentReference.path`, so paths are
rebuilt from item ids (folders seen in the feed, then a `GET /items/{id}` for an unknown one).
`410 Gone` restarts the enumeration from the `Location` Graph gives (a resync).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from dynamic_assets.drive.base import DriveItem
from dynamic_assets.drive.graph.http import (
    GraphError,
    GraphHttp,
    GraphNotFound,
    SyncEvent,
    graph_error,
    redact,
)
from dynamic_assets.drive.graph.items import ITEM_FIELDS, DriveAddress, item_from_json

log = logging.getLogger(__name__)


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


def list_tree(http: GraphHttp, address: DriveAddress, folder: str) -> Iterator[DriveItem]:
    """Every file and folder below `folder` (recursive), by listing `children` pages."""
    stack = [folder.strip("/")]
    first = True
    while stack:
        rel = stack.pop()
        url: str | None = address.path_url(rel, "children") + f"?$select={ITEM_FIELDS}"
        while url:
            try:
                page = http.get_json(url)
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


class DeltaFeed:
    """The delta feed under one root folder, with the map of folder ids to paths it builds up
    (kept between calls, so that a later page or a later tick resolves paths without lookups)."""

    def __init__(self, http: GraphHttp, address: DriveAddress) -> None:
        self.http = http
        self.address = address
        self.root = address.root
        self._lock = threading.RLock()
        self._root_id: str | None = None
        self._folders: dict[str, tuple[str | None, str]] = {}  # folder id -> (parent id, name)
        self._resolved: dict[str, str | None] = {}  # folder id -> path (None: outside the root)
        self._scope = "folder"

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
            url = link or self._initial_url()
            changed: dict[str, DriveItem] = {}
            deleted: dict[str, DeletedItem] = {}
            lookups = [0]
            while True:
                try:
                    resp = self.http.request("GET", url, expect=(200, 410))
                except GraphError as exc:
                    if (
                        link is None
                        and out.pages == 0
                        and self._scope == "folder"
                        and exc.status in (400, 501)
                    ):
                        # Some drives only track changes from the drive's root: read that feed
                        # and keep what lies under the root folder.
                        log.warning(
                            "Graph: delta on the folder refused (%s); using the drive root's delta",
                            exc.code,
                        )
                        self._scope = "drive"
                        url = self._initial_url()
                        continue
                    raise
                if resp.status_code == 410:
                    code, _ = graph_error(resp)
                    location = resp.headers.get("Location")
                    resp.close()
                    log.warning(
                        "Graph: delta link expired (%s); enumerating again from scratch",
                        code or "410 Gone",
                    )
                    url = location or self._initial_url()
                    out.resync = out.full = True
                    self.http.record(SyncEvent("resync_410", {"status": 410, "code": code}))
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

    def _root_item_id(self) -> str:
        if self._root_id is None:
            self._root_id = str(self.http.get_json(self.address.path_url(""))["id"])
        return self._root_id

    def _initial_url(self) -> str:
        if self._scope == "drive":
            return f"{self.address.drive_url}/root/delta?$select={ITEM_FIELDS}"
        return self.address.path_url("", "delta") + f"?$select={ITEM_FIELDS}"

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
        path: str | None
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
                js = self.http.get_json(
                    self.address.item_url(folder_id) + "?$select=id,name,parentReference,root"
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

    def _take(
        self,
        js: dict,
        root_id: str,
        changed: dict[str, DriveItem],
        deleted: dict[str, DeletedItem],
        lookups: list[int],
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
