"""A failure found by `dynamic-assets run` is alerted as one found by the sensors: the same
signed events reach the configured webhooks and are recorded in `webhook_deliveries`."""

from __future__ import annotations

import hashlib
import hmac

from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets_tests.cli.test_cli import env
from dynamic_assets_tests.support.webhook_receiver import hung_endpoint, receiver

SECRET = "whsec-headless-test"
HEADER = "date,symbol,exchange,open,high,low,close,volume,note\n"
GOOD = "2024-06-03,ACME,XNAS,1,2,0.5,1.5,100,\n"
BAD = "2024-06-04,ACME,XNAS,1,2,0.5,1.5,lots,\n"


def signed_by_secret(headers: dict[str, str], body: bytes) -> bool:
    """The signature header checked with `hmac` alone: `t=<unix time>,v1=<hex HMAC-SHA256 of
    "<t>." + body>`."""
    parts = dict(p.split("=", 1) for p in headers["X-Dynamic-Assets-Signature"].split(","))
    mac = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


def test_a_failure_found_by_run_reaches_the_webhooks_signed(tmp_path, db_url, db):
    folder = tmp_path / "drive" / "datasets" / "market" / "2024-06-03"
    folder.mkdir(parents=True)
    (folder / "xnas.csv").write_text(HEADER + GOOD + BAD, encoding="utf-8")

    with receiver(SECRET) as rec:
        result = CliRunner().invoke(
            main,
            ["run", "--dataset", "market", "--no-train"],
            env={
                **env(tmp_path, db_url),
                "DYNAMIC_ASSETS_WEBHOOK_URLS": rec.url,
                "DYNAMIC_ASSETS_WEBHOOK_SECRET": SECRET,
            },
        )
        received = list(rec.received)

    assert result.exit_code == 1, result.output
    assert SECRET not in result.output
    types = sorted(r.event["type"] for r in received)
    assert types == ["check.failed", "file.quarantined", "run.failed"], types
    assert all(signed_by_secret(r.headers, r.body) for r in received)
    by_type = {r.event["type"]: r.event for r in received}
    assert by_type["run.failed"]["data"]["job"] == "ingest_market"
    assert by_type["run.failed"]["data"]["trigger"] == "cli"
    assert by_type["check.failed"]["data"]["check"] == "rows_castable"
    assert by_type["file.quarantined"]["data"]["path"] == "datasets/market/2024-06-03/xnas.csv"
    assert all(r.event["dataset"] == "market" for r in received)
    with db.connect() as conn:
        deliveries = conn.execute(
            "SELECT event_type, status, attempts FROM public.webhook_deliveries ORDER BY 1"
        ).fetchall()
    assert deliveries == [
        ("check.failed", "delivered", 1),
        ("file.quarantined", "delivered", 1),
        ("run.failed", "delivered", 1),
    ]


def test_runs_failure_line_names_file_row_column_and_reason(tmp_path, db_url):
    folder = tmp_path / "drive" / "datasets" / "market" / "2024-06-03"
    folder.mkdir(parents=True)
    (folder / "xnas.csv").write_text(HEADER + GOOD + BAD, encoding="utf-8")

    result = CliRunner().invoke(
        main, ["run", "--dataset", "market", "--no-train"], env=env(tmp_path, db_url)
    )

    assert result.exit_code == 1, result.output
    failures = [ln for ln in result.output.splitlines() if ln.startswith("  market 2024-06-03  ")]
    assert failures == [
        "  market 2024-06-03  datasets/market/2024-06-03/xnas.csv: row 2: column volume: "
        "value 'lots': 1 value(s) are not a valid integer; expected decimal digits with an "
        "optional leading - (coerce: true on the column takes other forms)"
    ], failures


def test_each_failure_line_counts_the_values_of_the_file_it_names(tmp_path, db_url):
    folder = tmp_path / "drive" / "datasets" / "market" / "2024-06-03"
    folder.mkdir(parents=True)
    (folder / "xnas.csv").write_text(HEADER + GOOD + BAD + BAD.replace("06-04", "06-05"))
    (folder / "xnys.csv").write_text(HEADER + BAD.replace("ACME,XNAS", "BETA,XNYS"))

    result = CliRunner().invoke(
        main, ["run", "--dataset", "market", "--no-train"], env=env(tmp_path, db_url)
    )

    assert result.exit_code == 1, result.output
    failures = [ln for ln in result.output.splitlines() if ln.startswith("  market 2024-06-03  ")]
    reason = (
        "value 'lots': {n} value(s) are not a valid integer; expected decimal digits with an "
        "optional leading - (coerce: true on the column takes other forms)"
    )
    assert failures == [
        "  market 2024-06-03  datasets/market/2024-06-03/xnas.csv: row 2: column volume: "
        + reason.format(n=2),
        "  market 2024-06-03  datasets/market/2024-06-03/xnys.csv: row 1: column volume: "
        + reason.format(n=1),
    ], failures


def test_a_webhook_that_never_answers_holds_the_run_one_read_timeout(tmp_path, db_url, db):
    folder = tmp_path / "drive" / "datasets" / "market" / "2024-06-03"
    folder.mkdir(parents=True)
    (folder / "xnas.csv").write_text(HEADER + GOOD + BAD, encoding="utf-8")

    with hung_endpoint() as url:
        result = CliRunner().invoke(
            main,
            ["run", "--dataset", "market", "--no-train"],
            env={
                **env(tmp_path, db_url),
                "DYNAMIC_ASSETS_WEBHOOK_URLS": url,
                "DYNAMIC_ASSETS_WEBHOOK_SECRET": SECRET,
                "DYNAMIC_ASSETS_WEBHOOK_READ_TIMEOUT": "1.5",
            },
        )

    assert result.exit_code == 1, result.output
    assert "alerts not all delivered" in result.output, result.output
    # One attempt, given up after the configured read timeout; the sensor retries the rest.
    assert "no response within 1.5 s" in result.output, result.output
    with db.connect() as conn:
        deliveries = conn.execute(
            "SELECT status, attempts, last_error FROM public.webhook_deliveries"
        ).fetchall()
    assert {status for status, _, _ in deliveries} == {"retrying", "pending"}, deliveries
    tried = [(attempts, error) for status, attempts, error in deliveries if status == "retrying"]
    assert tried == [(1, "no response within 1.5 s")], deliveries
