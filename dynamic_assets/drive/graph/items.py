"""Drive items as Graph describes them, and the URLs that address them.

`DriveAddress` turns a path relative to the drive's root folder (or an item id) into a Graph URL;
`item_from_json` turns a driveItem resource into a `DriveItem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from dynamic_assets.declarations.names import listed_name
from dynamic_assets.drive.base import DriveItem

ITEM_FIELDS = (
    "id,name,size,eTag,cTag,file,folder,package,deleted,root,parentReference,"
    "lastModifiedDateTime,lastModifiedBy"
)
HASH_KEYS = ("quickXorHash", "sha256Hash", "sha1Hash")


@dataclass(frozen=True)
class DriveAddress:
    """A drive (`drive_url`, e.g. `.../drives/{id}`) and the folder inside it every path is
    relative to (`root`, without slashes at either end)."""

    drive_url: str
    root: str

    def path_url(self, rel: str, action: str = "") -> str:
        """The URL of the item at `rel` (`root:/<root>/<rel>:`), with `/action` appended."""
        full = "/".join(p for p in (self.root, rel.strip("/")) if p)
        suffix = f"/{action}" if action else ""
        if not full:
            return f"{self.drive_url}/root{suffix}"
        return f"{self.drive_url}/root:/{quote(full, safe='/')}:{suffix}"

    def item_url(self, item_id: str) -> str:
        """The URL of an item by id (`.../items/{id}`)."""
        return f"{self.drive_url}/items/{quote(item_id, safe='')}"


def parse_time(value: str | None) -> datetime:
    """An ISO 8601 time from Graph as an aware datetime; the epoch when missing or unreadable."""
    if not value:
        return datetime.fromtimestamp(0, UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def reported_hashes(js: dict) -> dict[str, str]:
    """The content hashes Graph reported for a driveItem (those this client can check)."""
    file = js.get("file") or {}
    return {k: v for k, v in (file.get("hashes") or {}).items() if k in HASH_KEYS and v}


def item_from_json(js: dict, path: str) -> DriveItem:
    """A `DriveItem` from a driveItem resource; `path` is relative to the drive root folder. A
    name holding a lone surrogate (JSON allows `\\ud800`) is listed with it escaped, as text
    that can be recorded, and is then refused as any name with a backslash."""
    file = js.get("file") or {}
    path = listed_name(path)
    is_folder = "folder" in js or "package" in js or not file
    user = ((js.get("lastModifiedBy") or {}).get("user") or {}).get("displayName")
    return DriveItem(
        item_id=str(js["id"]),
        path=path,
        name=listed_name(js.get("name") or path.rsplit("/", 1)[-1]),
        is_folder=is_folder,
        size=0 if is_folder else int(js.get("size") or 0),
        modified_at=parse_time(js.get("lastModifiedDateTime")),
        etag=js.get("eTag") or js.get("cTag") or "",
        ctag=js.get("cTag"),
        hashes=reported_hashes(js),
        modified_by=user,
    )
