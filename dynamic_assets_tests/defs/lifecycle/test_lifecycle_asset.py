"""`lifecycle/pass` on its daily schedule and its sensor: the `tiers` figures as metadata, the
versions it moved, and a signed alert when core crosses a threshold."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import dagster as dg

from dynamic_assets.alerts import SIGNATURE_HEADER
from dynamic_assets.declarations.storage import Lifecycle
from dynamic_assets.settings import WebhookSettings
from dynamic_assets_tests.support.tiers import curated, tier_decls  # noqa: F401
from dynamic_assets_tests.support.webhook_receiver import receiver

SECRET = "storage-alert-secret"
KEY = dg.AssetKey(["lifecycle", "pass"])


def _plan(decls, budget_mb: float):
    decls.storage.core.budget_mb = budget_mb
    decls.dataset("market").lifecycle = Lifecycle(hot_versions=1)
    return decls


def test_pass_materializes_the_tiers_figures_and_alerts_once_on_crossing_critical(
    settings,
    tier_decls,  # noqa: F811
    curated,  # noqa: F811
    drive_root,
    instance,
    monkeypatch,
):
    from dynamic_assets.definitions import build_defs

    decls = _plan(tier_decls, budget_mb=1)
    monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_SECRET", SECRET)
    with receiver(SECRET) as rec:
        monkeypatch.setenv("DYNAMIC_ASSETS_WEBHOOK_URLS", rec.url)
        alerting = replace(settings, webhooks=WebhookSettings(urls_set=True, secret_set=True))
        defs = build_defs(alerting, decls)
        assert defs.get_schedule_def("lifecycle_schedule").cron_schedule == "0 3 * * *"
        asset = defs.get_assets_def(KEY)
        result = dg.materialize([asset], resources=defs.resources, instance=instance)
        assert result.success
        received = rec.wait_for(1)
        again = dg.materialize([asset], resources=defs.resources, instance=instance)
        assert again.success

    meta = instance.get_latest_materialization_event(KEY).asset_materialization.metadata
    assert meta["status"].value == "critical"
    assert meta["budget_mb"].value == 1
    assert meta["usage_mb"].value > 1 and meta["percent_of_budget"].value > 100
    assert meta["versions_core"].value == 3 and meta["versions_archive"].value == 1
    assert meta["moved"].value == 0  # the second pass finds nothing more beyond policy
    first = result.asset_materializations_for_node("lifecycle__pass")[0].metadata
    assert first["moved"].value == 1
    assert "market 2024-06-01 core -> archive" in first["moves"].value
    assert list((drive_root / "archive" / "market" / "2024-06-01").glob("*_archive.parquet"))

    # One alert for the crossing, none for the second pass that found core still critical.
    assert len(received) == 1
    req = received[0]
    fields = dict(p.split("=", 1) for p in req.headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(
        SECRET.encode(), fields["t"].encode() + b"." + req.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    event = json.loads(req.body)
    assert event["type"] == "storage.critical"
    assert event["data"]["status"] == "critical" and event["data"]["budget_mb"] == 1
    assert event["data"]["percent_of_budget"] > 100


def test_sensor_requests_a_pass_when_core_crosses_warn_at(
    settings,
    tier_decls,  # noqa: F811
    curated,  # noqa: F811
    instance,
):
    from dynamic_assets.definitions import build_defs

    healthy = build_defs(settings, _plan(tier_decls, budget_mb=100_000))
    sensor = healthy.get_sensor_def("lifecycle_sensor")
    with dg.build_sensor_context(instance=instance, resources=healthy.resources) as context:
        quiet = sensor(context)
    assert isinstance(quiet, dg.SkipReason) and "healthy" in quiet.skip_message
    cursor = context.cursor

    over = build_defs(settings, _plan(tier_decls, budget_mb=1))
    sensor = over.get_sensor_def("lifecycle_sensor")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=over.resources
    ) as context:
        crossed = sensor(context)
    assert isinstance(crossed, dg.RunRequest)
    assert crossed.asset_selection == [KEY]
    with dg.build_sensor_context(
        instance=instance, cursor=context.cursor, resources=over.resources
    ) as context:
        still = sensor(context)
    assert isinstance(still, dg.SkipReason) and "critical" in still.skip_message


def test_pass_moves_to_the_main_tier_and_lists_each_versions_tier(
    settings,
    tier_decls,  # noqa: F811
    curated,  # noqa: F811
    pg_server,
    instance,
    monkeypatch,
):
    from dynamic_assets.declarations.storage import MainTier
    from dynamic_assets.definitions import build_defs
    from dynamic_assets_tests.support.postgres import create_database

    main_url = pg_server.get_uri(create_database(pg_server, "main"))
    monkeypatch.setenv("MAIN_DB_URL", main_url)
    decls = _plan(tier_decls, budget_mb=500)
    decls.storage.main = MainTier(url_env="MAIN_DB_URL")
    defs = build_defs(settings, decls)
    result = dg.materialize([defs.get_assets_def(KEY)], resources=defs.resources, instance=instance)
    assert result.success

    meta = result.asset_materializations_for_node("lifecycle__pass")[0].metadata
    assert "market 2024-06-01 core -> main (560 rows)" in meta["moves"].value
    assert meta["versions_main"].value == 1 and meta["versions_core"].value == 3
    assert meta["main_usage_mb"].value > 0 and meta["main_curated_mb"].value > 0
    assert main_url not in str(meta)
    tiers = meta["version_tiers"].value
    assert "| market | 2024-06-01 | main |" in tiers and "| market | 2024-07-01 | core |" in tiers
