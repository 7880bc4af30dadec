"""What the next pass moves and why: by policy (beyond the hot versions and old enough), and over
critical the oldest beyond policy until core is under warn_at; the hot versions never."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dynamic_assets.declarations.storage import CoreTier, Lifecycle
from dynamic_assets.lifecycle.plan import plan_pass
from dynamic_assets.lifecycle.usage import core_usage
from dynamic_assets_tests.support.staging import curate_and_fingerprint


def _usage(db, core):
    with db.connect() as conn:
        return core_usage(conn, core)


def _moves(plan):
    return [(m.dataset, m.version) for m in plan.moves]


def test_usage_measures_each_partition_and_the_database(curated):
    usage = _usage(curated, CoreTier())
    with curated.connect() as conn:
        size = conn.execute(
            "SELECT pg_total_relation_size('ai_curated.market'::regclass::oid) "
            "+ sum(pg_total_relation_size(inhrelid)) FROM pg_inherits "
            "WHERE inhparent = 'ai_curated.market'::regclass"
        ).fetchone()[0]
        db_size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    market = [v for v in usage.versions if v.dataset == "market"]
    assert [v.version for v in market] == ["2024-06-01", "2024-07-01"]
    assert all(v.bytes > 0 and v.tier == "core" for v in market)
    assert sum(v.bytes for v in market) == size  # the parent itself holds no rows
    assert usage.database_bytes == db_size
    assert usage.status == "healthy"
    tiny = _usage(curated, CoreTier(budget_mb=db_size / 1048576 / 0.95))
    assert tiny.status == "critical"
    monitor = _usage(curated, CoreTier(budget_mb=db_size / 1048576 / 0.85))
    assert monitor.status == "monitor"


def test_policy_moves_versions_beyond_hot_and_older_than_archive_after_days(curated, tier_decls):
    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, archive_after_days=30)
    usage = _usage(curated, CoreTier())
    assert _moves(plan_pass(tier_decls, usage)) == []  # curated today: not old enough
    later = datetime.now(UTC) + timedelta(days=31)
    plan = plan_pass(tier_decls, usage, now=later)
    assert _moves(plan) == [("market", "2024-06-01")]
    assert "archive_after_days" in plan.moves[0].reason
    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=2, archive_after_days=30)
    assert _moves(plan_pass(tier_decls, usage, now=later)) == []


def test_over_critical_the_oldest_beyond_policy_go_until_under_warn(curated, drive, tier_decls):
    curate_and_fingerprint(curated, drive, tier_decls, "corpus", "v1.1")
    for name in ("market", "corpus", "embeddings"):
        tier_decls.dataset(name).lifecycle = Lifecycle(hot_versions=1)
    usage = _usage(curated, CoreTier())
    db_bytes = usage.database_bytes
    oldest = next(v for v in usage.versions if (v.dataset, v.version) == ("market", "2024-06-01"))
    budget = db_bytes / 0.95
    core = CoreTier(
        budget_mb=budget / 1048576,
        warn_at=0.95 * (1 - oldest.bytes / (2 * db_bytes)),
        critical_at=0.95 * (1 - oldest.bytes / (4 * db_bytes)),
    )
    plan = plan_pass(tier_decls, _usage(curated, core))
    assert plan.usage.status == "critical"
    assert _moves(plan) == [("market", "2024-06-01")]  # enough to be under warn_at
    assert "critical" in plan.moves[0].reason
    assert plan.projected_status == "healthy"

    low = CoreTier(budget_mb=budget / 1048576, warn_at=0.01, critical_at=0.02)
    plan = plan_pass(tier_decls, _usage(curated, low))
    # every version beyond the hot one of its dataset, oldest curated first; never a hot one
    assert _moves(plan) == [("market", "2024-06-01"), ("corpus", "v1.0")]


def test_sensitive_versions_stay_in_core_with_the_reason(curated, tier_decls):
    tier_decls.dataset("market").sensitivity = "sensitive"
    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, archive_after_days=1)
    plan = plan_pass(
        tier_decls, _usage(curated, CoreTier()), now=datetime.now(UTC) + timedelta(days=2)
    )
    assert _moves(plan) == []
    assert any("market 2024-06-01" in k and "sensitive" in k for k in plan.kept)
