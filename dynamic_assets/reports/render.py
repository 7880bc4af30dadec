"""The weekly review as one self-contained HTML page (a Jinja2 template, charts embedded as
base64 PNG, no JavaScript) and a Markdown summary of its headline figures."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from dynamic_assets.reports.figures import Figures
from dynamic_assets.reports.health import Quota
from dynamic_assets.reports.sensor_health import sensor_rows
from dynamic_assets.reports.storage_trend import StorageTrend, Threshold

TITLE = "dynamic-assets weekly review"

_env = Environment(
    loader=PackageLoader("dynamic_assets.reports", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
)


def human_bytes(n: int) -> str:
    """Bytes in binary units, one decimal (`1.5 MiB`)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def seconds(s: float | None) -> str:
    """A duration for people: seconds with one decimal, `-` when there is none."""
    return "-" if s is None else f"{s:.1f} s"


def percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def quota_text(q: Quota | None) -> str:
    """The drive's quota in one line: used of total (share), remaining, Graph's state."""
    if q is None:
        return "not recorded (OneDrive only)"
    used = human_bytes(q.used) if q.used is not None else "?"
    total = human_bytes(q.total) if q.total is not None else "?"
    share = f" ({percent(q.fraction)})" if q.fraction is not None else ""
    remaining = human_bytes(q.remaining) if q.remaining is not None else "?"
    return f"{used} used of {total}{share}, {remaining} remaining, state {q.state or '?'}"


def growth_text(t: StorageTrend | None) -> str:
    """The current growth per week, or why there is none."""
    if t is None or t.latest is None:
        return "no size history yet"
    if t.growth_per_week is None:
        return "one snapshot only"
    return human_bytes(round(t.growth_per_week))


def threshold_text(th: Threshold) -> str:
    """When the current growth reaches the threshold."""
    if th.reached:
        return "already reached"
    if th.on is None:
        return "not at the current growth"
    return f"{th.on.astimezone(UTC):%Y-%m-%d}"


def storage_lines(t: StorageTrend | None) -> list[str]:
    """The Storage section's size-history lines of the summary."""
    if t is None:
        return []
    lines = [
        f"- core budget: {human_bytes(t.budget_bytes)}",
        f"- growth per week (last 28 days of snapshots): {growth_text(t)}",
    ]
    if t.latest is not None:
        lines += [
            f"- reaches {th.name} ({percent(th.fraction)}, {human_bytes(th.bytes)}): "
            f"{threshold_text(th)}"
            for th in t.thresholds
        ]
    return lines


def _when(f: Figures) -> tuple[str, str]:
    return f.since.strftime("%Y-%m-%d %H:%M"), f.until.strftime("%Y-%m-%d %H:%M")


def html(figures: Figures, charts: Mapping[str, bytes]) -> str:
    """The report page: every section, its tables and charts (PNG as data: URLs)."""
    since, until = _when(figures)
    return _env.get_template("weekly_review.html.j2").render(
        title=TITLE,
        since=since,
        until=until,
        f=figures,
        charts={k: base64.b64encode(v).decode("ascii") for k, v in charts.items()},
        bytes=human_bytes,
        seconds=seconds,
        pct=percent,
        quota=quota_text,
        growth=growth_text,
        threshold=threshold_text,
        sensor_rows=sensor_rows(figures.health.sensors),
    )


def markdown(figures: Figures, report_path: str | None = None) -> str:
    """The summary: the headline figures of each section, as Markdown."""
    f = figures
    since, until = _when(f)
    s, q, pv = f.sync, f.quality, f.provenance
    checks = sum(c.runs for c in q.checks)
    passed = sum(c.passed for c in q.checks)
    lines = [
        f"# {TITLE}",
        "",
        f"Window: {since} to {until} (UTC)."
        + (f" Report: `{report_path}`." if report_path else ""),
        "",
        "## Sync",
        f"- versions curated: {s.versions}",
        f"- files curated: {s.files}",
        f"- bytes staged: {s.bytes_staged} ({human_bytes(s.bytes_staged)})",
        f"- failed steps: {s.failures}",
        f"- files quarantined: {s.quarantined}",
        f"- latency p50: {seconds(s.latency_p50_s)}",
        f"- latency p95: {seconds(s.latency_p95_s)}",
        f"- Graph requests throttled (429/503, retried): {s.throttled}",
        f"- seconds waited for Graph: {seconds(s.throttle_seconds)}",
        f"- delta resyncs after 410: {s.resyncs}",
    ]
    lines += [f"- {label}: {text}" for label, text in sensor_rows(f.health.sensors)]
    lines += [
        f"- drive quota: {quota_text(f.health.quota)}",
    ]
    if s.quarantine_reasons:
        lines.append("- top quarantine reasons:")
        lines += [f"  - {r.count} × {r.reason}" for r in s.quarantine_reasons[:3]]
    lines += [
        "",
        "## Data quality",
        f"- checks passed: {passed}/{checks}"
        + (f" ({percent(passed / checks)})" if checks else ""),
        f"- rows rejected: {q.rows_rejected}",
        f"- schema drift events: {len(q.drift)}",
        f"- expectation failures: {sum(r.count for r in q.expectation_failures)}",
    ]
    lines += [f"  - {r.reason}: {r.count}" for r in q.expectation_failures]
    lines += [
        "",
        "## Storage",
        f"- database size: {f.storage.database_bytes} ({human_bytes(f.storage.database_bytes)})",
        f"- curated tables: {len(f.storage.curated_tables)}",
    ]
    lines += storage_lines(f.health.storage)
    lines += [
        "",
        "## Training",
    ]
    lines += [f"- {name}: {n} run(s)" for name, n in f.training.runs_per_model] or [
        "- no training run in this window"
    ]
    lines += [
        "",
        "## Provenance",
        f"- attested: {pv.attested}",
        f"- anchored: {pv.anchored}",
        f"- waiting for attestation: {pv.attest_backlog}",
        f"- attested, not anchored: {pv.anchor_backlog}",
        "",
        "## Freshness",
    ]
    lines += [
        f"- {x.dataset}: {'LATE' if x.late else 'fresh'} (latest {x.latest_version or 'none'}, "
        f"policy {x.max_days} d)"
        for x in f.freshness
    ] or ["- no dataset declares a freshness policy"]
    return "\n".join(lines) + "\n"
