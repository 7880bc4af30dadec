"""The in-memory drive behind the Graph test server: items by id, a change log for delta
queries (with tombstones for deleted items), and the driveItem JSON Graph would answer with."""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from dynamic_assets.drive.graph.quickxor import quickxorhash

DRIVE_ID = "b!TestDrive0123"
USER = "ada@contoso.example"


@dataclass
class Node:
    id: str
    name: str
    parent: str | None
    is_folder: bool
    content: bytes = b""
    version: int = 1
    content_version: int = 1
    seq: int = 0
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified_by: str = "Ada Lovelace"
    reported: dict | None = None  # hashes to report instead of the true ones (a corrupt record)

    @property
    def etag(self) -> str:
        return f'"{{{self.id}}},{self.version}"'

    @property
    def ctag(self) -> str:
        return f'"c:{{{self.id}}},{self.content_version}"'


@dataclass
class Tombstone:
    id: str
    parent: str | None
    is_folder: bool
    seq: int
    ancestors: tuple[str, ...]


class FakeDrive:
    """An in-memory drive with a change log for delta queries."""

    def __init__(self, drive_id: str = DRIVE_ID) -> None:
        self.drive_id = drive_id
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.seq = 0
        self.root = Node(id="ROOT0", name="root", parent=None, is_folder=True)
        self.nodes: dict[str, Node] = {self.root.id: self.root}
        self.children: dict[str, dict[str, str]] = {self.root.id: {}}
        self.tombstones: dict[str, Tombstone] = {}
        self.token_generation = 0  # delta tokens of an older generation answer 410
        self.report_sha256 = False
        self._snapshots: dict = {}
        # The drive resource's `quota` facet (GET /drives/{id}); `used` is set by the test, not
        # summed from the items.
        self.quota = {
            "total": 1_099_511_627_776,
            "used": 0,
            "remaining": 1_099_511_627_776,
            "deleted": 0,
            "state": "normal",
        }

    def drive_json(self) -> dict:
        """The drive resource as Graph returns it: id, type and quota."""
        return {"id": self.drive_id, "driveType": "business", "quota": dict(self.quota)}

    # -- changes

    def _bump(self, node: Node) -> None:
        self.seq += 1
        node.seq = self.seq
        self._snapshots.clear()

    def _new_id(self) -> str:
        return f"ITEM{next(self._ids):07X}"

    def mkdir(self, path: str) -> Node:
        with self.lock:
            node = self.root
            for name in [p for p in path.strip("/").split("/") if p]:
                child_id = self.children[node.id].get(name)
                if child_id is None:
                    child = Node(id=self._new_id(), name=name, parent=node.id, is_folder=True)
                    self.nodes[child.id] = child
                    self.children[child.id] = {}
                    self.children[node.id][name] = child.id
                    self._bump(child)
                    node = child
                else:
                    node = self.nodes[child_id]
            return node

    def put(self, path: str, content: bytes, *, modified_by: str = "Ada Lovelace") -> Node:
        with self.lock:
            parent_path, _, name = path.strip("/").rpartition("/")
            parent = self.mkdir(parent_path)
            existing = self.children[parent.id].get(name)
            if existing:
                node = self.nodes[existing]
                node.content = content
                node.version += 1
                node.content_version += 1
                node.reported = None
            else:
                node = Node(
                    id=self._new_id(), name=name, parent=parent.id, is_folder=False, content=content
                )
                self.nodes[node.id] = node
                self.children[parent.id][name] = node.id
            node.modified = datetime.now(UTC)
            node.modified_by = modified_by
            self._bump(node)
            return node

    def delete(self, path: str) -> None:
        with self.lock:
            node = self.node_at(path)
            if node is None:
                raise KeyError(path)
            doomed = [(n, self.ancestors(n)) for n in self._subtree(node)]
            for n, ancestors in doomed:
                self.seq += 1
                self.tombstones[n.id] = Tombstone(n.id, n.parent, n.is_folder, self.seq, ancestors)
                self.nodes.pop(n.id, None)
                self.children.pop(n.id, None)
            self.children[node.parent].pop(node.name, None)
            self._snapshots.clear()

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far answers 410 Gone (as after a long disconnection)."""
        with self.lock:
            self.token_generation += 1

    def _subtree(self, node: Node) -> list[Node]:
        out = [node]
        for child_id in self.children.get(node.id, {}).values():
            out.extend(self._subtree(self.nodes[child_id]))
        return out

    # -- reading

    def node_at(self, path: str) -> Node | None:
        node = self.root
        for name in [p for p in path.strip("/").split("/") if p]:
            child_id = self.children.get(node.id, {}).get(name)
            if child_id is None:
                return None
            node = self.nodes[child_id]
        return node

    def ancestors(self, node: Node) -> tuple[str, ...]:
        out = []
        parent = node.parent
        while parent is not None:
            out.append(parent)
            parent = self.nodes[parent].parent if parent in self.nodes else None
        return tuple(out)

    def path_of(self, node: Node) -> str:
        names = []
        while node.parent is not None:
            names.append(node.name)
            node = self.nodes[node.parent]
        return "/".join(reversed(names))

    def hashes(self, node: Node) -> dict:
        if node.reported is not None:
            return dict(node.reported)
        out = {"quickXorHash": quickxorhash(node.content)}
        if self.report_sha256:
            out["sha256Hash"] = hashlib.sha256(node.content).hexdigest().upper()
        return out

    def item_json(
        self, node: Node, base: str, *, delta: bool = False, download: str | None = None
    ) -> dict:
        js: dict = {
            "id": node.id,
            "name": node.name,
            "eTag": node.etag,
            "size": len(node.content) if not node.is_folder else self.folder_size(node),
            "createdDateTime": "2024-06-01T12:00:00Z",
            "lastModifiedDateTime": node.modified.strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
            "lastModifiedBy": {"user": {"displayName": node.modified_by, "email": USER}},
            "webUrl": f"{base}/web/{node.id}",
        }
        if not delta:
            js["cTag"] = node.ctag  # OneDrive for Business leaves cTag out of delta items
        if node is self.root:
            js["root"] = {}
        else:
            ref = {"driveId": self.drive_id, "driveType": "business", "id": node.parent}
            if not delta:
                parent = self.nodes[node.parent]
                parent_path = self.path_of(parent)
                ref["path"] = "/drive/root:" + (("/" + quote(parent_path)) if parent_path else "")
            js["parentReference"] = ref
        if node.is_folder:
            js["folder"] = {"childCount": len(self.children.get(node.id, {}))}
        else:
            js["file"] = {"mimeType": "application/octet-stream", "hashes": self.hashes(node)}
            if download:
                js["@microsoft.graph.downloadUrl"] = download
        return js

    def folder_size(self, node: Node) -> int:
        return sum(len(n.content) for n in self._subtree(node) if not n.is_folder)

    def delta_ids(self, scope: Node, since: int, upto: int) -> list[str]:
        """Ids of items under `scope` changed in (since, upto]: live items and tombstones."""
        key = (scope.id, since, upto)
        cached = self._snapshots.get(key)
        if cached is not None:
            return cached
        live = [
            n
            for n in self.nodes.values()
            if since < n.seq <= upto and (n is scope or scope.id in self.ancestors(n))
        ]
        if since == 0:
            live.sort(key=lambda n: (n is not scope, self.path_of(n)))
            ids = [n.id for n in live]
        else:
            dead = [
                t
                for t in self.tombstones.values()
                if since < t.seq <= upto and scope.id in t.ancestors
            ]
            merged = [(n.seq, n.id) for n in live] + [(t.seq, t.id) for t in dead]
            ids = [i for _, i in sorted(merged)]
        self._snapshots[key] = ids
        return ids
