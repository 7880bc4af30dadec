"""A local server that speaks the part of Supabase REST (PostgREST v12) the trainer client uses,
backed by the real embedded PostgreSQL, so that row level security is Postgres's own.

As on Supabase: the `apikey` header is required, `Authorization: Bearer <JWT>` (HS256) names
the role, and each request runs in a transaction `SET LOCAL ROLE <role>`. It checks the request
shapes the docs define and answers with theirs:

- `GET /rest/v1/<table>?select=a,b&<col>=eq.<value>&order=a.asc,b.desc&limit=N&offset=M`
  (or a `Range: M-K` header), `Accept-Profile: <schema>` for a schema other than `public`
  (only exposed schemas), `Prefer: count=exact`;
- response: a JSON array (rows as `json_agg` renders them, as PostgREST does), `Content-Range:
  M-K/total` (`*` without a count; `*/total` for no rows), 200, or 206 when a count was asked
  and the range is part of the result; 416 past the end;
- `PATCH` / `DELETE` with filters (writes, to show that the database refuses them);
- errors: `{"code", "message", "details", "hint"}` with PostgREST's status codes (401/403 for
  42501, 404 PGRST205 for an unknown table, 406 PGRST106 for a schema not exposed, 400 otherwise).
- `db-max-rows`: no response holds more than `max_rows` rows, whatever the limit.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg import sql

from dynamic_assets_tests.support.servers import LoopbackServer

JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
RESERVED = {"select", "order", "limit", "offset", "on_conflict", "columns"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_key(role: str, secret: str = JWT_SECRET, *, expires_in: int = 3600) -> str:
    """A Supabase-style API key: an HS256 JWT whose `role` claim names the Postgres role."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {
        "iss": "supabase",
        "role": role,
        "iat": int(time.time()),
        "exp": int(time.time()) + expires_in,
    }
    payload = _b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(sig)}"


def _claims(token: str, secret: str) -> dict:
    try:
        header, payload, sig = token.split(".")
        expected = hmac.new(
            secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(expected, _unb64(sig)):
            raise ValueError("JWSError JWSInvalidSignature")
        claims = json.loads(_unb64(payload))
    except ValueError as exc:
        raise ValueError(str(exc) if "JWS" in str(exc) else "JWSError CompactDecodeError") from None
    if claims.get("exp", 0) < time.time():
        raise ValueError("JWT expired")
    return claims


@dataclass
class Request:
    method: str
    table: str
    params: list[tuple[str, str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.params if k == name), None)


@dataclass
class PostgrestServer:
    db_url: str
    max_rows: int = 1000
    schemas: tuple[str, ...] = ("public", "ai_curated")
    jwt_secret: str = JWT_SECRET
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gets(self, table: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and r.table == table]


class ApiError(Exception):
    def __init__(self, status: int, code: str | None, message: str, hint: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint


def _split_fields(text: str) -> list[str]:
    """`a,"b c",d` -> ['a', 'b c', 'd'] (PostgREST's select and order lists)."""
    out, cur, quoted, i = [], "", False, 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and i + 1 < len(text) and text[i + 1] == '"':
                cur += '"'
                i += 2
                continue
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    out.append(cur)
    return [f for f in out if f != ""]


def _select_list(text: str | None) -> sql.Composable:
    if not text or text == "*":
        return sql.SQL("*")
    names = _split_fields(text)
    for n in names:
        if re.search(r"[()]|::|->", n):
            raise ApiError(400, "PGRST100", f'"failed to parse select parameter ({text})"')
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _order_list(text: str) -> sql.Composable:
    parts = []
    for item in _split_fields(text):
        bits = item.rsplit(".", 2)
        name, mods = bits[0], bits[1:]
        while mods and mods[0] not in ("asc", "desc", "nullsfirst", "nullslast"):
            name, mods = f"{name}.{mods[0]}", mods[1:]
        direction = "DESC" if "desc" in mods else "ASC"
        nulls = (
            " NULLS FIRST" if "nullsfirst" in mods else " NULLS LAST" if "nullslast" in mods else ""
        )
        parts.append(
            sql.SQL("{} {}{}").format(sql.Identifier(name), sql.SQL(direction), sql.SQL(nulls))
        )
    return sql.SQL(", ").join(parts)


def _filters(req: Request) -> tuple[sql.Composable, list]:
    conds: list[sql.Composable] = []
    args: list = []
    for key, value in req.params:
        if key in RESERVED:
            continue
        name = key[1:-1].replace('""', '"') if key.startswith('"') and key.endswith('"') else key
        op, _, operand = value.partition(".")
        negate = op == "not"
        if negate:
            op, _, operand = operand.partition(".")
        if op in OPS:
            cond = sql.SQL("{} {} %s").format(sql.Identifier(name), sql.SQL(OPS[op]))
            args.append(operand)
        elif op == "is" and operand in ("null", "true", "false"):
            cond = sql.SQL("{} IS {}").format(sql.Identifier(name), sql.SQL(operand.upper()))
        else:
            raise ApiError(
                400, "PGRST100", f'"failed to parse filter ({value})" (line 1, column 1)'
            )
        conds.append(sql.SQL("NOT ({})").format(cond) if negate else cond)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conds) if conds else sql.SQL("")
    return where, args


def _range(req: Request) -> tuple[int, int | None]:
    limit = req.param("limit")
    offset = req.param("offset")
    header = req.headers.get("range")
    if header and (limit is not None or offset is not None):
        raise ApiError(400, "PGRST100", "use either a Range header or limit/offset")
    try:
        if header:
            m = re.fullmatch(r"(\d+)-(\d*)", header.strip())
            if not m:
                raise ApiError(416, "PGRST103", "Requested range not satisfiable")
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else None
            return start, None if end is None else end - start + 1
        return int(offset or 0), None if limit is None else int(limit)
    except ValueError:
        raise ApiError(400, "PGRST100", "limit and offset must be integers") from None


def _handler(server: PostgrestServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, exc: ApiError) -> None:
            body = {"code": exc.code, "details": None, "hint": exc.hint, "message": exc.message}
            self._send(exc.status, json.dumps(body).encode())

        def _request(self) -> tuple[Request, str, str]:
            parts = urlsplit(self.path)
            if not parts.path.startswith("/rest/v1/"):
                raise ApiError(404, None, "not found")
            table = unquote(parts.path[len("/rest/v1/") :])
            headers = {k.lower(): v for k, v in self.headers.items()}
            req = Request(
                self.command, table, parse_qsl(parts.query, keep_blank_values=True), headers
            )
            with server.lock:
                server.requests.append(req)
            if not headers.get("apikey"):
                raise ApiError(
                    401,
                    None,
                    "No API key found in request",
                    "No `apikey` request header or url param was found.",
                )
            auth = headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else headers["apikey"]
            try:
                role = _claims(token, server.jwt_secret).get("role") or "anon"
            except ValueError as exc:
                raise ApiError(401, "PGRST301", str(exc)) from None
            profile = headers.get("content-profile" if self.command != "GET" else "accept-profile")
            schema = profile or server.schemas[0]
            if schema not in server.schemas:
                raise ApiError(406, "PGRST106", f"Invalid schema: {schema}",
                               f"Only the following schemas are exposed: {', '.join(server.schemas)}")  # fmt: skip
            return req, role, schema

        def _run(self, role: str, work):
            with psycopg.connect(server.db_url, autocommit=True) as conn:
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                        conn.execute(
                            "SELECT set_config('request.jwt.claims', %s, true)",
                            (json.dumps({"role": role}),),
                        )
                        return work(conn)
                except psycopg.errors.InsufficientPrivilege as exc:
                    raise ApiError(
                        401 if role == "anon" else 403,
                        "42501",
                        exc.diag.message_primary or str(exc),
                    ) from None
                except psycopg.errors.UndefinedTable:
                    raise ApiError(
                        404, "PGRST205", "Could not find the table in the schema cache"
                    ) from None
                except psycopg.Error as exc:
                    raise ApiError(
                        400, exc.sqlstate, exc.diag.message_primary or str(exc)
                    ) from None

        def do_GET(self) -> None:  # noqa: N802
            try:
                req, role, schema = self._request()
                table = sql.Identifier(schema, req.table)
                where, args = _filters(req)
                order = req.param("order")
                order_sql = sql.SQL(" ORDER BY ") + _order_list(order) if order else sql.SQL("")
                offset, limit = _range(req)
                limit = server.max_rows if limit is None else min(limit, server.max_rows)
                prefer = req.headers.get("prefer", "")
                counting = re.search(r"count=(exact|planned|estimated)", prefer) is not None

                def work(conn):
                    body = conn.execute(
                        sql.SQL(
                            "SELECT coalesce(json_agg(_t), '[]')::text, count(*) FROM "
                            "(SELECT {} FROM {}{}{} LIMIT {} OFFSET {}) _t"
                        ).format(
                            _select_list(req.param("select")),
                            table,
                            where,
                            order_sql,
                            sql.Literal(limit),
                            sql.Literal(offset),
                        ),  # fmt: skip
                        args,
                    ).fetchone()
                    total = (
                        conn.execute(
                            sql.SQL("SELECT count(*) FROM {}{}").format(table, where), args
                        ).fetchone()[0]
                        if counting
                        else None
                    )
                    return body[0], int(body[1]), total

                text, n, total = self._run(role, work)
                if counting and n == 0 and offset > 0 and offset >= total:
                    raise ApiError(416, "PGRST103", "Requested range not satisfiable",
                                   f"An offset of {offset} was requested, but there are only {total} rows.")  # fmt: skip
                span = f"{offset}-{offset + n - 1}" if n else "*"
                content_range = f"{span}/{total if counting else '*'}"
                partial = counting and (offset > 0 or offset + n < total)
                self._send(206 if partial else 200, text.encode(), {"Content-Range": content_range})
            except ApiError as exc:
                self._error(exc)

        def _write(self, kind: str) -> None:
            # Read the body first, always: left unread it would be taken for the next request.
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                req, role, schema = self._request()
                table = sql.Identifier(schema, req.table)
                where, args = _filters(req)
                if kind == "PATCH":
                    values = json.loads(raw or b"{}")
                    sets = sql.SQL(", ").join(
                        sql.SQL("{} = %s").format(sql.Identifier(k)) for k in values
                    )
                    statement = sql.SQL("UPDATE {} SET {}{}").format(table, sets, where)
                    params = [
                        *map(
                            lambda v: v if not isinstance(v, dict | list) else json.dumps(v),
                            values.values(),
                        ),
                        *args,
                    ]
                else:
                    statement = sql.SQL("DELETE FROM {}{}").format(table, where)
                    params = args
                n = self._run(role, lambda conn: conn.execute(statement, params).rowcount)
                self._send(204, b"", {"Content-Range": f"*/{n}"})
            except ApiError as exc:
                self._error(exc)

        def do_PATCH(self) -> None:  # noqa: N802
            self._write("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._write("DELETE")

    return Handler


@contextlib.contextmanager
def serve(db_url: str, **kwargs) -> Iterator[PostgrestServer]:
    """Run the server on 127.0.0.1 (an ephemeral port) for the block; `url` is the project URL."""
    state = PostgrestServer(db_url, **kwargs)
    with LoopbackServer(_handler(state)) as server:
        state.url = server.url
        yield state
