"""The team's OneDrive through Microsoft Graph, behind the same `Drive` interface as the local folder.

Modules, by concern:

- `drive`: `GraphDrive` (the `Drive` implementation), `GraphConfig` and `graph_drive`.
- `http`: the requests session, `GraphError` and its kinds, retries honouring `Retry-After`,
  redaction of tokens from messages and logs.
- `delta`: listing `children` pages, and the delta feed with its cursor and 410 resync.
- `download`: streamed downloads with `Range` resume and size and hash checks.
- `upload`: simple PUT and chunked upload sessions.
- `items`: driveItem JSON to `DriveItem`, and item URLs.
- `auth`: MSAL token providers; `quickxor`: OneDrive's content hash.
"""

from dynamic_assets.drive.graph.delta import DeletedItem, DeltaResult
from dynamic_assets.drive.graph.download import ContentMismatch, GraphDownload
from dynamic_assets.drive.graph.drive import (
    DEFAULT_ROOT,
    KIND,
    GraphConfig,
    GraphDrive,
    graph_drive,
)
from dynamic_assets.drive.graph.http import GraphConflict, GraphError, GraphNotFound, redact
from dynamic_assets.drive.graph.items import item_from_json
from dynamic_assets.drive.graph.upload import UPLOAD_UNIT

__all__ = [
    "DEFAULT_ROOT",
    "KIND",
    "UPLOAD_UNIT",
    "ContentMismatch",
    "DeletedItem",
    "DeltaResult",
    "GraphConfig",
    "GraphConflict",
    "GraphDownload",
    "GraphDrive",
    "GraphError",
    "GraphNotFound",
    "graph_drive",
    "item_from_json",
    "redact",
]
