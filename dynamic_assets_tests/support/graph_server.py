"""A local HTTPS server that speaks the parts of Microsoft Graph and the Microsoft identity
platform that `GraphDrive` and MSAL use, over an in-memory drive (`graph_fake_drive.FakeDrive`),
with fault injection.

Identity (what MSAL reads): `/{tenant}/v2.0/.well-known/openid-configuration`,
`/{tenant}/oauth2/v2.0/token` (client credentials, device code, refresh token) and
`/{tenant}/oauth2/v2.0/devicecode`.

Graph (`/v1.0`, response shapes from the Graph docs): a drive addressed as `/drives/{id}`,
`/users/{user}/drive` or `/me/drive`; items by path (`root:/a/b:`) or id (`items/{id}`);
`children` pages; `delta` pages with `@odata.nextLink` / `@odata.deltaLink`, `410 Gone` with a
`Location` for an expired token, no `parentReference.path` and (OneDrive for Business) no `cTag`
in delta items, deleted items with the `deleted` facet and no name; `/content` answering with a
302 to a pre-authenticated download URL that honours `Range`; simple PUT uploads and upload
sessions (`createUploadSession`, fragments with `Content-Range`, `nextExpectedRanges`) with
`@microsoft.graph.conflictBehavior`. Bearer tokens are checked on every Graph call.

Faults are queued with `fault(...)`: a status with headers (429 + Retry-After, 503, 500, 410),
a connection cut after N bytes of a download, a stall longer than the client's read timeout.
The server runs as a `LoopbackServer` (TLS from a `trustme` test CA written to a file for the
client to trust).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from dynamic_assets_tests.support.graph_fake_drive import DRIVE_ID as DRIVE_ID  # re-exported
from dynamic_assets_tests.support.graph_fake_drive import USER, FakeDrive, Node
from dynamic_assets_tests.support.servers import LoopbackServer, trusting

TENANT = "contoso-tenant"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "s3cr3t-Value~do-not-log"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Fault:
    method: str
    path_contains: str
    status: int = 500
    headers: dict = field(default_factory=dict)
    body: dict | None = None
    times: int = 1
    cut_after: int | None = None  # downloads: send this many bytes, then drop the connection
    stall: float | None = None  # sleep this long before answering
    skip: int = 0  # let this many matching requests through first

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and method == self.method and self.path_contains in path


class GraphServer(LoopbackServer):
    """The server; `url` is the HTTPS base (`https://127.0.0.1:<port>`)."""

    def __init__(self, tmp: Path, *, page_size: int = 1000) -> None:
        self.drive = FakeDrive()
        self.page_size = page_size
        self.folder_delta_supported = True
        self.token_lifetime = 3600
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        self.refresh_tokens: set[str] = set()
        self.token_grants: list[str] = []
        self.token_scopes: list[str] = []  # the `scope` of each token and device-code request
        self.faults: list[Fault] = []
        self.log: list[dict] = []
        self.download_delay = 0.0
        self.active_downloads = 0
        self.max_active_downloads = 0
        self.uploads: dict[str, dict] = {}
        self.tempauth = secrets.token_urlsafe(24)
        self._lock = threading.Lock()
        self.device_codes: dict[str, str] = {}  # device code -> scope asked for
        handler = type("Handler", (_Handler,), {"app": self})
        super().__init__(handler, ca_file=tmp / "graph-test-ca.pem")
        self.graph_url = f"{self.url}/v1.0"

    # -- control

    def fault(self, method: str, path_contains: str, **kwargs) -> Fault:
        f = Fault(method, path_contains, **kwargs)
        with self._lock:
            self.faults.append(f)
        return f

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.matches(method, path):
                    if f.skip:
                        f.skip -= 1
                        return None
                    f.times -= 1
                    return f
        return None

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far is now expired (Graph answers 401)."""
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def requests(self, method: str | None = None, contains: str = "") -> list[dict]:
        return [
            r
            for r in self.log
            if (method is None or r["method"] == method) and contains in r["path"]
        ]

    def issue_access_token(self) -> str:
        token = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = time.time() + self.token_lifetime
        return token


class _Handler(BaseHTTPRequestHandler):
    app: GraphServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def handle(self):
        with contextlib.suppress(ssl.SSLError, ConnectionError, OSError):
            super().handle()

    # -- plumbing

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict | None = None,
        ctype: str = "application/json",
    ):
        self.send_response(status)
        self._entry["status"] = status
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str, message: str, headers: dict | None = None):
        self._json(
            status,
            {
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {"date": "2024-06-01T00:00:00", "request-id": "r-1"},
                }
            },
            headers,
        )

    def _dispatch(self):
        app = self.app
        parts = urlsplit(self.path)
        body = self._body()
        entry = {
            "method": self.command,
            "path": self.path,
            "range": self.headers.get("Range"),
            "auth": self.headers.get("Authorization"),
            "content_range": self.headers.get("Content-Range"),
            "length": len(body),
        }
        with app._lock:
            app.log.append(entry)
        self._entry = entry
        fault = app.take_fault(self.command, self.path)
        if fault is not None and fault.cut_after is None:
            if fault.stall:
                time.sleep(fault.stall)
            if fault.status:
                payload = fault.body or {
                    "error": {
                        "code": {
                            429: "activityLimitReached",
                            503: "serviceNotAvailable",
                            410: "resyncRequired",
                        }.get(fault.status, "generalException"),
                        "message": "injected fault",
                    }
                }
                return self._json(fault.status, payload, fault.headers)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        if path.startswith(f"/{TENANT}/"):
            return self._identity(path, body)
        if path.startswith("/download/"):
            return self._download(path[len("/download/") :], query, fault)
        if path.startswith("/upload/"):
            return self._upload(path[len("/upload/") :], query, body)
        if path.startswith("/v1.0/"):
            if not self._authorized():
                return
            return self._graph(parts.path[len("/v1.0") :], query, body)
        return self._error(404, "itemNotFound", "no such endpoint")

    do_GET = do_POST = do_PUT = do_DELETE = lambda self: self._dispatch()  # noqa: E731

    # -- identity platform

    def _identity(self, path: str, body: bytes):
        app = self.app
        base = f"{app.url}/{TENANT}"
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            return self._json(
                200,
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "response_types_supported": [
                        "code",
                        "id_token",
                        "code id_token",
                        "id_token token",
                    ],
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_post",
                        "private_key_jwt",
                        "client_secret_basic",
                    ],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                    "tenant_region_scope": "EU",
                },
            )
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if path.endswith(("/oauth2/v2.0/devicecode", "/oauth2/v2.0/token")):
            app.token_scopes.append(form.get("scope", ""))
        if path.endswith("/oauth2/v2.0/devicecode"):
            code = "dc-" + secrets.token_urlsafe(12)
            app.device_codes[code] = form.get("scope", "")
            return self._json(
                200,
                {
                    "device_code": code,
                    "user_code": "GRPH-TEST",
                    "verification_uri": f"{app.url}/devicelogin",
                    "expires_in": 900,
                    "interval": 1,
                    "message": f"To sign in, use a web browser to open the page {app.url}/devicelogin and enter the code GRPH-TEST to authenticate.",
                },
            )
        if path.endswith("/oauth2/v2.0/token"):
            grant = form.get("grant_type", "")
            app.token_grants.append(grant)
            if form.get("client_id") != CLIENT_ID:
                return self._json(
                    400,
                    {
                        "error": "unauthorized_client",
                        "error_description": "AADSTS700016: Application not found.",
                    },
                )
            if grant == "client_credentials":
                if form.get("client_secret") != CLIENT_SECRET:
                    return self._json(
                        401,
                        {
                            "error": "invalid_client",
                            "error_description": "AADSTS7000215: Invalid client secret provided.",
                        },
                    )
                return self._json(
                    200,
                    {
                        "token_type": "Bearer",
                        "expires_in": app.token_lifetime,
                        "ext_expires_in": app.token_lifetime,
                        "access_token": app.issue_access_token(),
                    },
                )
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                if form.get("device_code") not in app.device_codes:
                    return self._json(
                        400, {"error": "expired_token", "error_description": "AADSTS70020: expired"}
                    )
                scope = app.device_codes[form["device_code"]]
                return self._json(200, self._user_tokens({**form, "scope": scope}))
            if grant == "refresh_token":
                if form.get("refresh_token") not in app.refresh_tokens:
                    return self._json(
                        400,
                        {
                            "error": "invalid_grant",
                            "error_description": "AADSTS70000: refresh token revoked",
                        },
                    )
                return self._json(200, self._user_tokens(form))
            return self._json(400, {"error": "unsupported_grant_type", "error_description": grant})
        return self._error(404, "notFound", path)

    def _user_tokens(self, form: dict) -> dict:
        app = self.app
        now = int(time.time())
        claims = {
            "aud": CLIENT_ID,
            "iss": f"{app.url}/{TENANT}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": "Ada Lovelace",
            "oid": "00000000-0000-0000-0000-00000000ada1",
            "preferred_username": USER,
            "sub": "ada-subject",
            "tid": TENANT,
            "ver": "2.0",
        }
        id_token = ".".join(
            [
                _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode()),
                _b64url(json.dumps(claims).encode()),
                "",
            ]
        )
        refresh = "rt-" + secrets.token_urlsafe(24)
        app.refresh_tokens.add(refresh)
        return {
            "token_type": "Bearer",
            "scope": form.get("scope", ""),
            "expires_in": app.token_lifetime,
            "ext_expires_in": app.token_lifetime,
            "access_token": app.issue_access_token(),
            "refresh_token": refresh,
            "id_token": id_token,
            "client_info": _b64url(json.dumps({"uid": claims["oid"], "utid": TENANT}).encode()),
        }

    # -- Graph

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        token = header[7:] if header.startswith("Bearer ") else ""
        expiry = self.app.tokens.get(token)
        if expiry is None:
            self._error(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty or invalid.",
                {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )
            return False
        if expiry < time.time():
            self._error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                {
                    "WWW-Authenticate": 'Bearer realm="", error="invalid_token", error_description="The access token has expired"'
                },
            )
            return False
        return True

    def _graph(self, raw_path: str, query: dict, body: bytes):
        drive = self.app.drive
        path = unquote(raw_path)
        for prefix in (f"/drives/{drive.drive_id}", f"/users/{USER}/drive", "/me/drive"):
            if path == prefix and self.command == "GET":
                with drive.lock:
                    return self._json(200, drive.drive_json())
            if path.startswith(prefix + "/"):
                rest = path[len(prefix) :]
                break
        else:
            return self._error(404, "itemNotFound", "The drive does not exist")
        with drive.lock:
            if rest.startswith("/items/"):
                item_id, _, action = rest[len("/items/") :].partition("/")
                node = drive.nodes.get(item_id)
                if node is None:
                    return self._error(404, "itemNotFound", "The resource could not be found.")
                return self._item_action(node, action, query, body, path_for_new=None)
            if rest == "/root" or rest.startswith("/root/"):
                return self._item_action(
                    drive.root,
                    rest[len("/root/") :] if rest != "/root" else "",
                    query,
                    body,
                    path_for_new=None,
                )
            if rest.startswith("/root:"):
                spec = rest[len("/root:") :]
                item_path, colon, action = spec.partition(":")
                action = action.lstrip("/")
                node = drive.node_at(item_path)
                if node is None:
                    if action in ("content", "createUploadSession") and self.command in (
                        "PUT",
                        "POST",
                    ):
                        return self._item_action(
                            None, action, query, body, path_for_new=item_path.strip("/")
                        )
                    return self._error(404, "itemNotFound", "The resource could not be found.")
                return self._item_action(
                    node, action, query, body, path_for_new=item_path.strip("/")
                )
        return self._error(400, "invalidRequest", "Invalid request")

    def _item_action(
        self, node: Node | None, action: str, query: dict, body: bytes, *, path_for_new: str | None
    ):
        app = self.app
        drive = app.drive
        if action == "" and self.command == "DELETE":
            if node is None or node is drive.root:
                return self._error(400, "invalidRequest", "Invalid request")
            drive.delete(drive.path_of(node))
            return self._send(204)
        if action == "":
            download = (
                f"{app.url}/download/{node.id}?tempauth={app.tempauth}"
                if not node.is_folder
                else None
            )
            return self._json(200, drive.item_json(node, app.graph_url, download=download))
        if action == "children":
            ids = sorted(
                drive.children.get(node.id, {}).values(), key=lambda i: drive.nodes[i].name
            )
            skip = int((query.get("$skiptoken") or ["0"])[0])
            page = ids[skip : skip + app.page_size]
            out = {"value": [drive.item_json(drive.nodes[i], app.graph_url) for i in page]}
            if skip + app.page_size < len(ids):
                out["@odata.nextLink"] = (
                    f"{app.graph_url}{self._self_path()}?$skiptoken={skip + app.page_size}"
                )
            return self._json(200, out)
        if action == "delta":
            return self._delta(node, query)
        if action == "content" and self.command == "GET":
            return self._send(
                302, b"", {"Location": f"{app.url}/download/{node.id}?tempauth={app.tempauth}"}
            )
        if action == "content" and self.command == "PUT":
            behaviour = (query.get("@microsoft.graph.conflictBehavior") or ["replace"])[0]
            if node is not None and behaviour == "fail":
                return self._error(
                    409, "nameAlreadyExists", "The specified item name already exists."
                )
            created = node is None
            new = drive.put(path_for_new, body)
            return self._json(201 if created else 200, drive.item_json(new, app.graph_url))
        if action == "createUploadSession" and self.command == "POST":
            behaviour = (json.loads(body or b"{}").get("item") or {}).get(
                "@microsoft.graph.conflictBehavior", "replace"
            )
            if node is not None and behaviour == "fail":
                return self._error(
                    409, "nameAlreadyExists", "The specified item name already exists."
                )
            sid = secrets.token_hex(8)
            app.uploads[sid] = {
                "path": path_for_new,
                "data": bytearray(),
                "behaviour": behaviour,
                "fragments": [],
            }
            return self._json(
                200,
                {
                    "uploadUrl": f"{app.url}/upload/{sid}?tempauth={app.tempauth}",
                    "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                    "nextExpectedRanges": ["0-"],
                },
            )
        return self._error(400, "invalidRequest", f"unsupported action {action!r}")

    def _self_path(self) -> str:
        return urlsplit(self.path).path[len("/v1.0") :]

    def _delta(self, scope: Node, query: dict):
        app = self.app
        drive = app.drive
        if scope is not drive.root and not app.folder_delta_supported:
            return self._error(
                400, "invalidRequest", "Delta is only supported on the root of the drive."
            )
        base = f"{app.graph_url}{self._self_path()}"
        token = (query.get("token") or [None])[0]
        if token is None:
            since, upto, offset = 0, drive.seq, 0
        else:
            try:
                state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            except ValueError:
                return self._error(400, "invalidRequest", "Invalid token")
            if state["kind"] == "delta":
                since, upto, offset = state["since"], drive.seq, 0
            else:
                since, upto, offset = state["since"], state["upto"], state["offset"]
            if state.get("gen") != drive.token_generation:
                return self._error(
                    410,
                    "resyncChangesApplyDifferences",
                    "Resync required. Replace any local items with the server's version (including deletes).",
                    {"Location": base},
                )
        ids = drive.delta_ids(scope, since, upto)
        page_ids = ids[offset : offset + app.page_size]
        value = []
        for item_id in page_ids:
            node = drive.nodes.get(item_id)
            if node is not None:
                value.append(drive.item_json(node, app.graph_url, delta=True))
            else:
                t = drive.tombstones[item_id]
                js = {
                    "id": t.id,
                    "deleted": {"state": "deleted"},
                    "parentReference": {"driveId": drive.drive_id, "id": t.parent},
                }
                js["folder" if t.is_folder else "file"] = {}
                value.append(js)
        out: dict = {
            "@odata.context": f"{app.graph_url}/$metadata#Collection(driveItem)",
            "value": value,
        }
        if offset + app.page_size < len(ids):
            nxt = {
                "kind": "page",
                "since": since,
                "upto": upto,
                "offset": offset + app.page_size,
                "gen": drive.token_generation,
            }
            out["@odata.nextLink"] = f"{base}?token={_b64url(json.dumps(nxt).encode())}"
        else:
            last = {"kind": "delta", "since": upto, "gen": drive.token_generation}
            out["@odata.deltaLink"] = f"{base}?token={_b64url(json.dumps(last).encode())}"
        return self._json(200, out)

    # -- pre-authenticated download and upload URLs

    def _download(self, item_id: str, query: dict, fault: Fault | None):
        app = self.app
        if (query.get("tempauth") or [""])[0] != app.tempauth:
            return self._error(401, "unauthenticated", "bad tempauth")
        with app.drive.lock:
            node = app.drive.nodes.get(item_id)
            data = node.content if node is not None else None
        if data is None:
            return self._error(404, "itemNotFound", "gone")
        start, end = 0, len(data) - 1
        status = 200
        rng = self.headers.get("Range")
        headers = {"Accept-Ranges": "bytes", "ETag": node.etag}
        if rng and rng.startswith("bytes="):
            a, _, b = rng[len("bytes=") :].partition("-")
            start = int(a)
            end = int(b) if b else len(data) - 1
            if start >= len(data) and len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        payload = data[start : end + 1]
        with app._lock:
            app.active_downloads += 1
            app.max_active_downloads = max(app.max_active_downloads, app.active_downloads)
        try:
            self.send_response(status)
            self._entry["status"] = status
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            sent = 0
            step = 64 << 10
            while sent < len(payload):
                if fault is not None and fault.cut_after is not None and sent >= fault.cut_after:
                    self.wfile.flush()
                    self.close_connection = True
                    socket.socket.shutdown(self.connection, socket.SHUT_RDWR)
                    return
                limit = (
                    step
                    if fault is None or fault.cut_after is None
                    else min(step, fault.cut_after - sent)
                )
                self.wfile.write(payload[sent : sent + limit])
                sent += limit
                if app.download_delay:
                    self.wfile.flush()
                    time.sleep(app.download_delay)
        finally:
            with app._lock:
                app.active_downloads -= 1

    def _upload(self, sid: str, query: dict, body: bytes):
        app = self.app
        if (query.get("tempauth") or [""])[0] != app.tempauth:
            return self._error(401, "unauthenticated", "bad tempauth")
        if self.headers.get("Authorization"):
            return self._error(
                401, "unauthenticated", "do not send a bearer token to an upload URL"
            )
        session = app.uploads.get(sid)
        if session is None:
            return self._error(404, "itemNotFound", "upload session not found")
        expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        if self.command == "DELETE":
            app.uploads.pop(sid, None)
            return self._send(204)
        if self.command == "GET":
            return self._json(
                200,
                {"expirationDateTime": expires, "nextExpectedRanges": [f"{len(session['data'])}-"]},
            )
        content_range = self.headers.get("Content-Range", "")
        spec, _, total = content_range[len("bytes ") :].partition("/")
        a, _, b = spec.partition("-")
        start, end, total = int(a), int(b), int(total)
        if start != len(session["data"]) or end - start + 1 != len(body):
            return self._error(
                416, "invalidRange", f"expected a fragment from byte {len(session['data'])}"
            )
        session["fragments"].append((start, len(body)))
        session["data"].extend(body)
        if len(session["data"]) < total:
            return self._json(
                202,
                {"expirationDateTime": expires, "nextExpectedRanges": [f"{len(session['data'])}-"]},
            )
        drive = app.drive
        with drive.lock:
            existing = drive.node_at(session["path"])
            if existing is not None and session["behaviour"] == "fail":
                return self._error(
                    409, "nameAlreadyExists", "The specified item name already exists."
                )
            node = drive.put(session["path"], bytes(session["data"]))
            js = drive.item_json(node, app.graph_url)
        session["done"] = True
        return self._json(201 if existing is None else 200, js)


def seed_from_folder(server: GraphServer, local_root: Path, root: str) -> int:
    """Copy a local drive folder (e.g. from `seed_drive`) into the server's drive under `root`."""
    count = 0
    for path in sorted(local_root.rglob("*")):
        rel = path.relative_to(local_root).as_posix()
        if path.is_dir():
            server.drive.mkdir(f"{root}/{rel}")
        else:
            server.drive.put(f"{root}/{rel}", path.read_bytes())
            count += 1
    return count


def serve(tmp_path: Path, monkeypatch, **kwargs) -> contextlib.AbstractContextManager[GraphServer]:
    """Run a server for one test and make requests (and MSAL) trust its CA only."""
    return trusting(GraphServer(tmp_path, **kwargs), monkeypatch)
