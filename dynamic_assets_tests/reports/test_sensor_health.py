"""Sensor and cursor health in the weekly review: the drive sensor evaluated against the Graph test
server on a Dagster instance, each evaluation recorded as a tick the way the daemon records it;
the review reads the last successful tick, the ticks failed in its window and when a cursor was
last stored, and never prints the cursor (a Graph delta link)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.error import serializable_error_info_from_exc_info

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG
from dynamic_assets.definitions import build_defs
from dynamic_assets.defs.headless import dagster_instance
from dynamic_assets.defs.reports.assets import DRIVE_SENSORS
from dynamic_assets.drive import LocalDrive
from dynamic_assets.reports import write_review
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.graph_server import seed_from_folder, serve
from dynamic_assets_tests.support.onedrive import ROOT, onedrive_env, set_environment
from dynamic_assets_tests.support.runs import tick

NOW = datetime.now(UTC).replace(microsecond=0)


def _state(instance: dg.DagsterInstance, name: str) -> InstigatorState:
    """The sensor's state as the daemon adds it for a sensor of the code location."""
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="dynamic_assets.definitions"),
        location_name="dynamic_assets",
    )
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)
    return instance.add_instigator_state(
        InstigatorState(
            origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE, SensorInstigatorData()
        )
    )


def _ticked(defs, instance, state: InstigatorState, at: datetime) -> str | None:
    """One evaluation of the sensor from its stored cursor, recorded at `at` as the daemon records
    a tick (SUCCESS with runs, SKIPPED without, FAILURE with the error; the cursor stored when the
    evaluation returned one); the cursor the sensor holds afterwards."""
    state = instance.get_instigator_state(state.instigator_origin_id, state.selector_id)
    cursor = state.instigator_data.cursor
    data = TickData(
        instigator_origin_id=state.instigator_origin_id,
        instigator_name=state.instigator_name,
        instigator_type=InstigatorType.SENSOR,
        status=TickStatus.STARTED,
        timestamp=at.timestamp(),
        selector_id=state.selector_id,
    )
    record = instance.create_tick(data)
    try:
        result = tick(defs, instance, cursor, sensor=state.instigator_name)
    except Exception:
        error = serializable_error_info_from_exc_info(sys.exc_info())
        instance.update_tick(record.with_status(TickStatus.FAILURE, error=error))
        return cursor
    status = TickStatus.SUCCESS if result.run_requests else TickStatus.SKIPPED
    instance.update_tick(record.with_status(status).with_cursor(result.cursor))
    instance.update_instigator_state(
        state.with_data(
            state.instigator_data._replace(cursor=result.cursor, last_tick_timestamp=at.timestamp())
        )
    )
    return result.cursor


def _line(md: str, label: str) -> str:
    m = re.search(rf"^- {re.escape(label)}: (.*)$", md, re.M)
    assert m, f"no line {label!r} in\n{md}"
    return m.group(1)


def _utc(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


@pytest.fixture
def graph_defs(tmp_path, monkeypatch, drive_root, db_url, decls):
    with serve(tmp_path, monkeypatch) as srv:
        seed_from_folder(srv, drive_root, ROOT)
        env = {
            "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
            "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
            "SUPABASE_DB_URL": db_url,
        }
        set_environment(monkeypatch, env | onedrive_env(srv))
        yield srv, build_defs(Settings.from_env(), decls)


def _review(db, decls, tmp_path, instance):
    reports = tmp_path / "reports-drive"
    reports.mkdir(exist_ok=True)
    return write_review(
        db, LocalDrive(reports), decls, now=NOW, instance=instance, watched=DRIVE_SENSORS
    )


def test_the_review_shows_each_drive_sensors_last_successful_tick_failures_and_cursor(
    graph_defs, instance, db, decls, tmp_path
):
    srv, defs = graph_defs
    drive = _state(instance, "drive_sensor")
    _ticked(defs, instance, drive, NOW - timedelta(days=9))  # before the window
    srv.fault("GET", "/delta", status=403)
    _ticked(defs, instance, drive, NOW - timedelta(days=8))  # failed, before the window
    _ticked(defs, instance, drive, NOW - timedelta(minutes=20))
    srv.fault("GET", "/delta", status=403, body={"error": {"code": "accessDenied"}})
    _ticked(defs, instance, drive, NOW - timedelta(minutes=10))  # failed, in the window
    cursor = _ticked(defs, instance, drive, NOW - timedelta(minutes=3))
    _ticked(defs, instance, drive, NOW + timedelta(minutes=1))  # after the window's end
    ticks = instance.get_ticks(drive.instigator_origin_id, drive.selector_id)
    assert [t.status for t in reversed(ticks)] == [
        TickStatus.SUCCESS,
        TickStatus.FAILURE,
        TickStatus.SKIPPED,
        TickStatus.FAILURE,
        TickStatus.SKIPPED,
        TickStatus.SKIPPED,
    ]
    assert cursor is not None and '"delta":"http' in cursor

    md = _review(db, decls, tmp_path, instance).markdown
    assert _line(md, "drive_sensor last successful tick") == _utc(NOW - timedelta(minutes=3))
    assert _line(md, "drive_sensor ticks failed") == "1"
    assert _line(md, "drive_sensor cursor") == (
        f"fresh (stale after 10 × 30 s), last stored {_utc(NOW - timedelta(minutes=3))}"
    )
    assert _line(md, "model_checkpoints_sensor") == "no tick recorded in the Dagster instance"


def test_a_cursor_not_stored_for_more_than_ten_intervals_is_stale(
    graph_defs, instance, db, decls, tmp_path
):
    srv, defs = graph_defs
    checkpoints = _state(instance, "model_checkpoints_sensor")
    _ticked(defs, instance, checkpoints, NOW - timedelta(minutes=9))
    drive = _state(instance, "drive_sensor")
    _ticked(defs, instance, drive, NOW - timedelta(hours=2))
    srv.fault("GET", "/delta", status=403, times=3)
    for minutes in (30, 20, 6):
        _ticked(defs, instance, drive, NOW - timedelta(minutes=minutes))

    md = _review(db, decls, tmp_path, instance).markdown
    assert _line(md, "drive_sensor ticks failed") == "3"
    assert _line(md, "drive_sensor cursor") == (
        f"STALE, not stored for more than 10 × 30 s, last stored {_utc(NOW - timedelta(hours=2))}"
    )
    # 9 minutes is within 10 intervals of 60 s.
    assert _line(md, "model_checkpoints_sensor cursor").startswith("fresh (stale after 10 × 60 s)")


def test_the_cursor_and_its_delta_link_appear_nowhere_in_the_review(
    graph_defs, instance, db, decls, tmp_path
):
    srv, defs = graph_defs
    drive = _state(instance, "drive_sensor")
    cursor = _ticked(defs, instance, drive, NOW - timedelta(minutes=2))
    assert cursor is not None
    link = re.search(r'"delta":"([^"]+)"', cursor).group(1)
    token = link.rsplit("=", 1)[-1]
    review = _review(db, decls, tmp_path, instance)
    page = (tmp_path / "reports-drive" / review.html_path).read_text(encoding="utf-8")
    summary = (tmp_path / "reports-drive" / review.markdown_path).read_text(encoding="utf-8")
    assert "drive_sensor cursor" in page and "drive_sensor cursor" in summary
    for text in (page, summary):
        for secret in (cursor, link, token, "delta?"):
            assert secret not in text


def test_without_an_instance_the_review_says_what_it_did_not_see(db, decls, tmp_path):
    review = write_review(db, LocalDrive(tmp_path), decls)
    assert _line(review.markdown, "sensors and cursors") == (
        "not seen (no Dagster instance was given)"
    )
    assert "drive_sensor" not in review.markdown


def test_the_watched_intervals_are_the_sensors_own(defs):
    for w in DRIVE_SENSORS:
        assert defs.get_sensor_def(w.name).minimum_interval_seconds == w.interval_s


def _cli_review(drive_root, tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DYNAMIC_ASSETS_DRIVE", str(drive_root))
    monkeypatch.setenv("DYNAMIC_ASSETS_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 0, result.output
    return (drive_root / result.output.split()[1]).read_text(encoding="utf-8")


def test_cli_report_without_the_homes_dagster_instance_says_it_did_not_see_the_sensors(
    settings, db, drive_root, tmp_path, monkeypatch
):
    md = _cli_review(drive_root, tmp_path, monkeypatch)
    assert _line(md, "sensors and cursors") == (
        f"not seen (no Dagster instance at {tmp_path / 'home' / 'dagster'}; "
        "the sensors tick under `dynamic-assets dev`)"
    )
    assert not (tmp_path / "home" / "dagster" / "dagster.yaml").exists()


def test_cli_report_reads_the_sensors_ticks_from_the_homes_dagster_instance(
    settings, defs, db, drive_root, tmp_path, monkeypatch
):
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    with dagster_instance(settings) as home:
        _ticked(defs, home, _state(home, "drive_sensor"), at)
    md = _cli_review(drive_root, tmp_path, monkeypatch)
    assert _line(md, "drive_sensor last successful tick") == _utc(at)
    assert _line(md, "drive_sensor ticks failed") == "0"
    assert (
        _line(md, "drive_sensor cursor") == f"fresh (stale after 10 × 30 s), last stored {_utc(at)}"
    )
    assert _line(md, "model_checkpoints_sensor") == "no tick recorded in the Dagster instance"
