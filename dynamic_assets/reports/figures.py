"""The weekly review's figures, read from Postgres in plain SQL over a window [since, until).

Sync (versions and files curated per day, bytes staged, failed steps, quarantined files and their
most frequent reasons, latency from a file's modified time to its version's curation), data
quality (pass rate per check and dataset, rows rejected, schema drift, expectation failures),
storage (database size, `ai_curated` table sizes, data staged per week), training (runs per model,
test metric per version, checkpoints), provenance (`public.version_states`) and freshness against
each dataset's declared policy.

Reasons and messages of sensitive datasets quote values, so they are replaced by `WITHHELD`
before they leave the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from dynamic_assets.alerts.events import WITHHELD
from dynamic_assets.db.connection import one_row, scalar
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.reports.health import Health, health_figures

TOP_REASONS = 10
GROWTH_WEEKS = 8
# Checks every stage run records besides the declared expectations.
BUILTIN_CHECKS = ("rows_castable", "schema_unchanged")
# The metric a model's versions are compared on: the first of these its run recorded.
TEST_METRICS = ("test_rmse", "test_accuracy", "test_mae", "test_f1", "test_r2")


@dataclass(frozen=True)
class Day:
    day: date
    versions: int
    files: int


@dataclass(frozen=True)
class Reason:
    reason: str
    count: int


@dataclass
class Sync:
    per_day: list[Day] = field(default_factory=list)
    versions: int = 0
    files: int = 0
    bytes_staged: int = 0
    failures: int = 0
    failure_reasons: list[Reason] = field(default_factory=list)
    quarantined: int = 0
    quarantine_reasons: list[Reason] = field(default_factory=list)
    latency_files: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    throttled: int = 0
    throttle_seconds: float = 0.0
    resyncs: int = 0


@dataclass(frozen=True)
class CheckRate:
    dataset: str
    check: str
    runs: int
    passed: int

    @property
    def rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0


@dataclass(frozen=True)
class DayRate:
    day: date
    checks: int
    passed: int

    @property
    def rate(self) -> float:
        return self.passed / self.checks if self.checks else 0.0


@dataclass(frozen=True)
class Drift:
    dataset: str
    version: str
    message: str


@dataclass
class Quality:
    checks: list[CheckRate] = field(default_factory=list)
    per_day: list[DayRate] = field(default_factory=list)
    rows_rejected: int = 0
    drift: list[Drift] = field(default_factory=list)
    expectation_failures: list[Reason] = field(default_factory=list)


@dataclass(frozen=True)
class Week:
    week: date
    bytes: int


@dataclass
class Storage:
    database_bytes: int = 0
    curated_tables: list[tuple[str, int]] = field(default_factory=list)
    staged_per_week: list[Week] = field(default_factory=list)


@dataclass(frozen=True)
class MetricPoint:
    model: str
    version: str
    metric: str
    value: float
    at: datetime


@dataclass
class Training:
    runs_per_model: list[tuple[str, int]] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    checkpoints: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Provenance:
    states: dict[str, int] = field(default_factory=dict)
    attested_in_window: int = 0

    @property
    def attested(self) -> int:
        return self.states.get("attested", 0) + self.states.get("anchored", 0)

    @property
    def anchored(self) -> int:
        return self.states.get("anchored", 0)

    @property
    def attest_backlog(self) -> int:
        return self.states.get("curated", 0) + self.states.get("unfingerprinted", 0)

    @property
    def anchor_backlog(self) -> int:
        return self.states.get("attested", 0)


@dataclass(frozen=True)
class Freshness:
    dataset: str
    max_days: int
    latest_version: str | None
    curated_at: datetime | None
    age_days: float | None

    @property
    def late(self) -> bool:
        return self.age_days is None or self.age_days > self.max_days


@dataclass
class Figures:
    since: datetime
    until: datetime
    sync: Sync
    quality: Quality
    storage: Storage
    training: Training
    provenance: Provenance
    freshness: list[Freshness]
    health: Health = field(default_factory=Health)


def _sensitive(decls: Declarations) -> list[str]:
    return [d.name for d in decls.datasets if d.sensitivity == "sensitive"]


def _reasons(conn: psycopg.Connection, query: str | sql.Composed, params: dict) -> list[Reason]:
    return [Reason(r, int(n)) for r, n in conn.execute(query, params).fetchall()]


def sync_figures(
    conn: psycopg.Connection, since: datetime, until: datetime, sensitive: list[str]
) -> Sync:
    p = {"since": since, "until": until, "sensitive": sensitive, "top": TOP_REASONS}
    s = Sync()
    s.per_day = [
        Day(d, int(v), int(f or 0))
        for d, v, f in conn.execute(
            """SELECT (finished_at AT TIME ZONE 'UTC')::date AS day, count(*), sum(files)
                 FROM public.etl_runs
                WHERE step = 'curate' AND status = 'succeeded'
                  AND finished_at >= %(since)s AND finished_at < %(until)s
                GROUP BY day ORDER BY day""",
            p,
        ).fetchall()
    ]
    s.versions = sum(d.versions for d in s.per_day)
    s.files = sum(d.files for d in s.per_day)
    s.bytes_staged = int(
        scalar(
            conn,
            """SELECT coalesce(sum(bytes), 0) FROM public.etl_runs
                WHERE step = 'stage' AND status = 'succeeded'
                  AND finished_at >= %(since)s AND finished_at < %(until)s""",
            p,
        )
    )
    s.failures = int(
        scalar(
            conn,
            """SELECT count(*) FROM public.etl_runs WHERE status = 'failed'
                  AND finished_at >= %(since)s AND finished_at < %(until)s""",
            p,
        )
    )
    s.failure_reasons = _reasons(
        conn,
        """SELECT CASE WHEN dataset = ANY(%(sensitive)s) THEN %(withheld)s
                       ELSE coalesce(error, 'no error recorded') END AS reason, count(*) AS n
             FROM public.etl_runs WHERE status = 'failed'
              AND finished_at >= %(since)s AND finished_at < %(until)s
            GROUP BY reason ORDER BY n DESC, reason LIMIT %(top)s""",
        {**p, "withheld": WITHHELD},
    )
    s.quarantined = int(
        scalar(
            conn,
            """SELECT count(*) FROM public.onedrive_ingest WHERE status = 'quarantined'
                  AND updated_at >= %(since)s AND updated_at < %(until)s""",
            p,
        )
    )
    s.quarantine_reasons = _reasons(
        conn,
        """SELECT CASE WHEN dataset = ANY(%(sensitive)s) THEN %(withheld)s
                       ELSE coalesce(error, 'no reason recorded') END AS reason, count(*) AS n
             FROM public.onedrive_ingest WHERE status = 'quarantined'
              AND updated_at >= %(since)s AND updated_at < %(until)s
            GROUP BY reason ORDER BY n DESC, reason LIMIT %(top)s""",
        {**p, "withheld": WITHHELD},
    )
    n, p50, p95 = one_row(
        conn,
        """SELECT count(*),
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY s),
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY s)
             FROM (SELECT extract(epoch FROM d.curated_at - f.modified_at)::double precision AS s
                     FROM public.onedrive_ingest f
                     JOIN public.datasets d ON d.name = f.dataset AND d.version = f.version
                    WHERE f.status = 'curated' AND d.status = 'curated'
                      AND f.modified_at IS NOT NULL
                      AND d.curated_at >= %(since)s AND d.curated_at < %(until)s) t""",
        p,
    )
    s.latency_files, s.latency_p50_s, s.latency_p95_s = int(n), p50, p95
    throttled, waited, resyncs = one_row(
        conn,
        """SELECT count(*) FILTER (WHERE kind = 'throttled'),
                  coalesce(sum(seconds) FILTER (WHERE kind = 'throttled'), 0),
                  count(*) FILTER (WHERE kind = 'resync_410')
             FROM public.sync_events WHERE at >= %(since)s AND at < %(until)s""",
        p,
    )
    s.throttled, s.throttle_seconds, s.resyncs = int(throttled), float(waited), int(resyncs)
    return s


def quality_figures(
    conn: psycopg.Connection, since: datetime, until: datetime, sensitive: list[str]
) -> Quality:
    p = {"since": since, "until": until, "sensitive": sensitive, "withheld": WITHHELD}
    runs = sql.SQL("""SELECT r.dataset, r.version, r.finished_at, c.key AS name,
                     (c.value ->> 'passed')::boolean AS passed, c.value ->> 'message' AS message
                FROM public.etl_runs r, jsonb_each(r.checks) c
               WHERE r.step = 'stage' AND jsonb_typeof(c.value) = 'object'
                 AND r.finished_at >= %(since)s AND r.finished_at < %(until)s""")
    q = Quality()
    q.checks = [
        CheckRate(ds, name, int(n), int(ok))
        for ds, name, n, ok in conn.execute(
            sql.SQL("""SELECT dataset, name, count(*), count(*) FILTER (WHERE passed)
                  FROM ({runs}) c GROUP BY dataset, name ORDER BY dataset, name""").format(
                runs=runs
            ),
            p,
        ).fetchall()
    ]
    q.per_day = [
        DayRate(d, int(n), int(ok))
        for d, n, ok in conn.execute(
            sql.SQL("""SELECT (finished_at AT TIME ZONE 'UTC')::date AS day, count(*),
                       count(*) FILTER (WHERE passed)
                  FROM ({runs}) c GROUP BY day ORDER BY day""").format(runs=runs),
            p,
        ).fetchall()
    ]
    q.rows_rejected = int(
        scalar(
            conn,
            """SELECT coalesce(sum(rows_rejected), 0) FROM public.etl_runs WHERE step = 'stage'
                  AND finished_at >= %(since)s AND finished_at < %(until)s""",
            p,
        )
    )
    q.drift = [
        Drift(ds, v, m or "")
        for ds, v, m in conn.execute(
            sql.SQL("""SELECT dataset, version,
                       CASE WHEN dataset = ANY(%(sensitive)s) THEN %(withheld)s ELSE message END
                  FROM ({runs}) c WHERE name = 'schema_unchanged' AND NOT passed
                 ORDER BY finished_at, dataset, version""").format(runs=runs),
            p,
        ).fetchall()
    ]
    q.expectation_failures = _reasons(
        conn,
        sql.SQL("""SELECT name, count(*) AS n FROM ({runs}) c
             WHERE NOT passed AND name <> ALL(%(builtin)s)
             GROUP BY name ORDER BY n DESC, name""").format(runs=runs),
        {**p, "builtin": list(BUILTIN_CHECKS)},
    )
    return q


def storage_figures(conn: psycopg.Connection, until: datetime) -> Storage:
    st = Storage()
    st.database_bytes = int(scalar(conn, "SELECT pg_database_size(current_database())"))
    st.curated_tables = [
        (name, int(size))
        for name, size in conn.execute(
            """SELECT c.relname, sum(pg_total_relation_size(t.relid))
                 FROM pg_catalog.pg_class c, pg_partition_tree(c.oid) t
                WHERE c.relnamespace = 'ai_curated'::regnamespace AND c.relkind IN ('r', 'p')
                  AND NOT c.relispartition
                GROUP BY c.relname ORDER BY 2 DESC, 1"""
        ).fetchall()
    ]
    st.staged_per_week = [
        Week(w, int(b))
        for w, b in conn.execute(
            """SELECT w.week::date, coalesce(sum(r.bytes), 0)
                 FROM generate_series(date_trunc('week', %(until)s AT TIME ZONE 'UTC')
                                        - make_interval(weeks => %(weeks)s - 1),
                                      date_trunc('week', %(until)s AT TIME ZONE 'UTC'),
                                      interval '1 week') AS w(week)
                 LEFT JOIN public.etl_runs r
                        ON r.step = 'stage' AND r.status = 'succeeded'
                       AND date_trunc('week', r.finished_at AT TIME ZONE 'UTC') = w.week
                       AND r.finished_at < %(until)s
                GROUP BY w.week ORDER BY w.week""",
            {"until": until, "weeks": GROWTH_WEEKS},
        ).fetchall()
    ]
    return st


def training_figures(conn: psycopg.Connection, since: datetime, until: datetime) -> Training:
    t = Training()
    t.runs_per_model = [
        (name, int(n))
        for name, n in conn.execute(
            """SELECT name, count(*) FROM public.models
                WHERE created_at >= %s AND created_at < %s GROUP BY name ORDER BY name""",
            (since, until),
        ).fetchall()
    ]
    for name, version, metrics, at in conn.execute(
        """SELECT m.name, coalesce(d.version, m.version), m.performance_metrics, m.created_at
             FROM public.models m LEFT JOIN public.datasets d ON d.id = m.dataset_id
            WHERE m.created_at < %s ORDER BY m.created_at, m.id""",
        (until,),
    ).fetchall():
        metric = next(
            (k for k in TEST_METRICS if isinstance((metrics or {}).get(k), int | float)), None
        )
        if metric is not None:
            t.metrics.append(MetricPoint(name, version, metric, float(metrics[metric]), at))
    t.checkpoints = [
        (status, int(n))
        for status, n in conn.execute(
            "SELECT status, count(*) FROM public.model_checkpoints GROUP BY status ORDER BY status"
        ).fetchall()
    ]
    return t


def provenance_figures(conn: psycopg.Connection, since: datetime, until: datetime) -> Provenance:
    pv = Provenance()
    pv.states = {
        state: int(n)
        for state, n in conn.execute(
            "SELECT state, count(*) FROM public.version_states GROUP BY state ORDER BY state"
        ).fetchall()
    }
    pv.attested_in_window = int(
        scalar(
            conn,
            """SELECT count(*) FROM public.dataset_proofs
                WHERE created_at >= %s AND created_at < %s""",
            (since, until),
        )
    )
    return pv


def freshness_figures(
    conn: psycopg.Connection, decls: Declarations, until: datetime
) -> list[Freshness]:
    out = []
    for ds in decls.datasets:
        if ds.freshness is None:
            continue
        row = conn.execute(
            """SELECT version, curated_at FROM public.datasets
                WHERE name = %s AND status = 'curated' AND curated_at < %s
                ORDER BY curated_at DESC LIMIT 1""",
            (ds.name, until),
        ).fetchone()
        version, at = row if row else (None, None)
        age = (until - at).total_seconds() / 86400 if at else None
        out.append(Freshness(ds.name, ds.freshness.max_days_between_versions, version, at, age))
    return out


def weekly_figures(
    conn: psycopg.Connection,
    decls: Declarations,
    *,
    since: datetime,
    until: datetime | None = None,
) -> Figures:
    """Every figure of the report for the window [since, until) (until: now)."""
    until = until or datetime.now(UTC)
    sensitive = _sensitive(decls)
    return Figures(
        since=since,
        until=until,
        sync=sync_figures(conn, since, until, sensitive),
        quality=quality_figures(conn, since, until, sensitive),
        storage=storage_figures(conn, until),
        training=training_figures(conn, since, until),
        provenance=provenance_figures(conn, since, until),
        freshness=freshness_figures(conn, decls, until),
        health=health_figures(conn, decls.storage.core, until),
    )
