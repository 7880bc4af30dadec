"""Who may read each curated dataset: grants and row level security from the declaration.

A dataset's `sensitivity` and `readers` decide which database roles may SELECT its curated table
`ai_curated.<dataset>`; nobody but the pipeline's role (the owner of the tables) may write:

| sensitivity | roles that read |
|---|---|
| public | anon, authenticated, dai_trainer, dai_auditor, service_role |
| internal | dai_trainer, dai_auditor, service_role |
| sensitive | service_role |

plus, for any sensitivity, the roles named in `readers:`. Each reading role gets both a
`GRANT SELECT` and a `FOR SELECT` policy `USING (true)`: the grant lets it query the table, the
policy lets it see rows (row level security is on, so a grant alone shows no rows, and without
INSERT/UPDATE/DELETE policies nothing but the owner could write even if granted). Policies and
grants on the partitioned parent govern every query through it; the version partitions carry no
grants and have row level security on with no policy, so nobody reads them directly.

`apply_access` is idempotent and compares first: when the catalog already says what the
declaration says it changes nothing and takes no lock, so it can run on every promotion.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from dynamic_assets.db.connection import scalar
from dynamic_assets.db.migrate import LOCK_KEY
from dynamic_assets.db.tables import CURATED_SCHEMA, ident
from dynamic_assets.declarations.model import Dataset
from dynamic_assets.declarations.names import check_dataset_name, check_role_name

ANON = "anon"
AUTHENTICATED = "authenticated"
SERVICE_ROLE = "service_role"
TRAINER = "dai_trainer"
AUDITOR = "dai_auditor"
# The roles migration 0002 creates (if missing) and whose access the pipeline manages.
MANAGED_ROLES = (ANON, AUTHENTICATED, SERVICE_ROLE, TRAINER, AUDITOR)

READERS_BY_SENSITIVITY: dict[str, tuple[str, ...]] = {
    "public": (ANON, AUTHENTICATED, TRAINER, AUDITOR, SERVICE_ROLE),
    "internal": (TRAINER, AUDITOR, SERVICE_ROLE),
    "sensitive": (SERVICE_ROLE,),
}
POLICY_PREFIX = "dai_read_"


class AccessError(RuntimeError):
    """The access a declaration asks for cannot be set up; the message says why and what to do."""


@dataclass(frozen=True)
class AccessChange:
    """What `apply_access` changed on one curated table (all empty: it was already right)."""

    table: str
    readers: tuple[str, ...]
    granted: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    policies_created: list[str] = field(default_factory=list)
    policies_dropped: list[str] = field(default_factory=list)
    partitions_secured: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.granted
            or self.revoked
            or self.policies_created
            or self.policies_dropped
            or self.partitions_secured
        )


def readers_of(ds: Dataset) -> tuple[str, ...]:
    """The roles that may read the dataset's curated rows, in a stable order."""
    extra = [check_role_name(r) for r in ds.readers]
    return tuple(dict.fromkeys([*READERS_BY_SENSITIVITY[ds.sensitivity], *extra]))


def policy_name(role: str) -> str:
    """The name of the SELECT policy of one role (at most 63 bytes, stable)."""
    name = f"{POLICY_PREFIX}{role}"
    if len(name.encode("utf-8")) <= 63:
        return name
    digest = hashlib.sha1(role.encode("utf-8")).hexdigest()[:10]
    return f"{POLICY_PREFIX}{role[:40]}_{digest}"


def _table_oid(conn: psycopg.Connection, name: str) -> tuple[int, int] | None:
    row = conn.execute(
        """SELECT c.oid, c.relowner FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s""",
        (CURATED_SCHEMA, name),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def _grants(conn: psycopg.Connection, oid: int) -> dict[str, set[str]]:
    """Grantee role name (PUBLIC for everyone) -> privileges, leaving out the owner's."""
    rows = conn.execute(
        """SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE r.rolname END, a.privilege_type
             FROM pg_catalog.pg_class c
             CROSS JOIN LATERAL aclexplode(c.relacl) a
             LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
            WHERE c.oid = %s AND a.grantee <> c.relowner""",
        (oid,),
    ).fetchall()
    out: dict[str, set[str]] = {}
    for grantee, privilege in rows:
        out.setdefault(grantee, set()).add(privilege)
    return out


def _policies(conn: psycopg.Connection, oid: int) -> dict[str, tuple[str, list[str], str | None]]:
    """Policy name -> (command, roles, USING expression) of a table."""
    rows = conn.execute(
        """SELECT p.polname, p.polcmd,
                  ARRAY(SELECT CASE WHEN x = 0 THEN 'PUBLIC' ELSE (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = x) END
                          FROM unnest(p.polroles) x),
                  pg_catalog.pg_get_expr(p.polqual, p.polrelid)
             FROM pg_catalog.pg_policy p WHERE p.polrelid = %s""",
        (oid,),
    ).fetchall()
    return {r[0]: (r[1], list(r[2]), r[3]) for r in rows}


def _partitions(conn: psycopg.Connection, oid: int) -> list[tuple[int, str, bool]]:
    """(oid, name, row level security on) of each partition of a table."""
    rows = conn.execute(
        """SELECT c.oid, c.relname, c.relrowsecurity FROM pg_catalog.pg_inherits i
             JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s ORDER BY c.relname""",
        (oid,),
    ).fetchall()
    return [(int(r[0]), r[1], bool(r[2])) for r in rows]


def _missing_roles(conn: psycopg.Connection, roles: list[str]) -> list[str]:
    present = {
        r[0]
        for r in conn.execute(
            "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)", (roles,)
        ).fetchall()
    }
    return [r for r in roles if r not in present]


def _schema_usage(conn: psycopg.Connection, role: str) -> bool:
    return bool(
        scalar(conn, "SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, CURATED_SCHEMA))
    )


def apply_access(conn: psycopg.Connection, ds: Dataset) -> AccessChange:
    """Make the grants and row level security policies of `ai_curated.<dataset>` match its
    declared sensitivity and readers; returns what changed (nothing when already right).

    Runs in the caller's transaction if there is one (else in its own), as the owner of the
    table. Raises `AccessError` when the table does not exist or a role it names does not.
    """
    name = check_dataset_name(ds.name)
    readers = readers_of(ds)
    missing = _missing_roles(conn, list(dict.fromkeys([*MANAGED_ROLES, *readers])))
    if missing:
        managed = [r for r in missing if r in MANAGED_ROLES]
        if managed:
            raise AccessError(
                f"dataset {name!r}: role(s) {managed} do not exist: apply the migrations "
                "(dynamic_assets/db/migrations/0002_security.sql creates them)"
            )
        raise AccessError(
            f"dataset {name!r}: readers name role(s) that do not exist: {missing}; create them "
            f"(CREATE ROLE <name> NOLOGIN) or remove them from the declaration's readers"
        )
    with conn.transaction():
        found = _table_oid(conn, name)
        if found is None:
            raise AccessError(f"dataset {name!r}: table {CURATED_SCHEMA}.{name} does not exist")
        oid, _owner = found
        table = ident(CURATED_SCHEMA, name)
        change = AccessChange(f"{CURATED_SCHEMA}.{name}", readers)

        rls = scalar(conn, "SELECT relrowsecurity FROM pg_catalog.pg_class WHERE oid = %s", (oid,))
        if not rls:
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))

        # Grants: SELECT for each reader, nothing else for anyone.
        current = _grants(conn, oid)
        for grantee, privileges in sorted(current.items()):
            extra = privileges - ({"SELECT"} if grantee in readers else set())
            if extra:
                conn.execute(
                    sql.SQL("REVOKE ALL ON {} FROM {}").format(
                        table,
                        sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee),
                    )
                )
                change.revoked.append(grantee)
                current[grantee] = set()
        for role in readers:
            if "SELECT" not in current.get(role, set()):
                conn.execute(
                    sql.SQL("GRANT SELECT ON {} TO {}").format(table, sql.Identifier(role))
                )
                change.granted.append(role)
            if not _schema_usage(conn, role):
                # The schema's grants are one catalog row that every dataset shares: promotions
                # of two datasets at once would both update it ("tuple concurrently updated").
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{CURATED_SCHEMA} usage",)
                )
                if not _schema_usage(conn, role):
                    conn.execute(
                        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                            sql.Identifier(CURATED_SCHEMA), sql.Identifier(role)
                        )
                    )

        # Policies: one FOR SELECT USING (true) per reader; any other policy of ours goes.
        wanted = {policy_name(r): r for r in readers}
        policies = _policies(conn, oid)
        for pol, (cmd, roles, qual) in sorted(policies.items()):
            if not pol.startswith(POLICY_PREFIX):
                continue
            if pol in wanted and cmd == "r" and roles == [wanted[pol]] and qual == "true":
                continue
            conn.execute(sql.SQL("DROP POLICY {} ON {}").format(sql.Identifier(pol), table))
            change.policies_dropped.append(pol)
            policies.pop(pol)
        for pol, role in wanted.items():
            if pol not in policies:
                conn.execute(
                    sql.SQL(
                        "CREATE POLICY {} ON {} AS PERMISSIVE FOR SELECT TO {} USING (true)"
                    ).format(sql.Identifier(pol), table, sql.Identifier(role))
                )
                change.policies_created.append(pol)

        # Partitions: no grants and row level security on (no policies), so that a version's
        # rows are read through the parent only.
        for part_oid, part_name, part_rls in _partitions(conn, oid):
            part = ident(CURATED_SCHEMA, part_name)
            touched = False
            for grantee in sorted(_grants(conn, part_oid)):
                conn.execute(
                    sql.SQL("REVOKE ALL ON {} FROM {}").format(
                        part,
                        sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee),
                    )
                )
                touched = True
            if not part_rls:
                conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(part))
                touched = True
            if touched:
                change.partitions_secured.append(part_name)
    return change


def apply_all(conn: psycopg.Connection, datasets: list[Dataset]) -> list[AccessChange]:
    """`apply_access` for every declared dataset whose curated table exists."""
    out = []
    for ds in datasets:
        if _table_oid(conn, ds.name) is not None:
            out.append(apply_access(conn, ds))
    return out


def secure_registry(conn: psycopg.Connection) -> int:
    """Grants on the registry: every table in `public` that the pipeline's role owns and that has
    no row level security is read by dai_auditor and service_role only, written by the pipeline
    only (migration 0002, `public.dai_secure_registry()`). Run after every migration run, so that
    tables added by later migrations are covered as well, also on Supabase, whose default
    privileges open new tables in `public` to anon. Returns how many tables or sequences changed.
    """
    if not scalar(conn, "SELECT to_regprocedure('public.dai_secure_registry()') IS NOT NULL"):
        return 0
    # Processes starting at once would grant on the same tables side by side ("tuple
    # concurrently updated"): they take turns under the migrations' lock.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        return int(scalar(conn, "SELECT public.dai_secure_registry()"))
