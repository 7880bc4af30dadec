"""The report's charts, as PNG bytes drawn with matplotlib's Agg backend (no display needed):
where a trend says more than a table."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402 - after choosing the backend
from matplotlib.dates import DateFormatter, date2num  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dynamic_assets.reports.figures import Figures  # noqa: E402

WIDTH_PX, HEIGHT_PX, DPI = 800, 300, 100


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)  # the figure's size: WIDTH_PX x HEIGHT_PX
    return out.getvalue()


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _days(days: Sequence[date]) -> list[str]:
    return [d.strftime("%m-%d") for d in days]


def ingested_per_day(fig_: Figures) -> bytes:
    fig, ax = _figure("Curated per day: versions and files")
    days = fig_.sync.per_day
    if not days:
        _empty(ax, "nothing curated in this window")
    else:
        x = range(len(days))
        ax.bar([i - 0.2 for i in x], [d.files for d in days], width=0.4, label="files")
        ax.bar([i + 0.2 for i in x], [d.versions for d in days], width=0.4, label="versions")
        ax.set_xticks(list(x), _days([d.day for d in days]))
        ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def check_pass_rate(fig_: Figures) -> bytes:
    fig, ax = _figure("Check pass rate per day (all checks of all datasets)")
    days = fig_.quality.per_day
    if not days:
        _empty(ax, "no checks ran in this window")
    else:
        ax.plot(_days([d.day for d in days]), [100 * d.rate for d in days], marker="o")
        ax.set_ylim(0, 105)
        ax.set_ylabel("% passed")
    return _png(fig)


def staged_growth(fig_: Figures) -> bytes:
    fig, ax = _figure("Data staged into the database per week (cumulative MB)")
    weeks = fig_.storage.staged_per_week
    total, points = 0, []
    for w in weeks:
        total += w.bytes
        points.append(total / 1e6)
    if not weeks:
        _empty(ax, "no weeks recorded")
    else:
        ax.plot(_days([w.week for w in weeks]), points, marker="o", color="tab:green")
        ax.fill_between(range(len(points)), points, alpha=0.2, color="tab:green")
        ax.set_ylabel("MB")
    return _png(fig)


def metric_per_version(fig_: Figures) -> bytes:
    fig, ax = _figure("Test metric per dataset version")
    series: dict[tuple[str, str], list] = {}
    for p in fig_.training.metrics:
        series.setdefault((p.model, p.metric), []).append(p)
    if not series:
        _empty(ax, "no trained model recorded")
    else:
        for (model, metric), points in series.items():
            ax.plot(
                [p.version for p in points],
                [p.value for p in points],
                marker="o",
                label=f"{model} ({metric})",
            )
        ax.legend(loc="best", fontsize=8)
    return _png(fig)


def size_projection(fig_: Figures) -> bytes:
    """Measured sizes as points and a line; the projection at the current growth dashed; the
    budget's warn_at and critical_at as horizontal lines."""
    t = fig_.health.storage
    fig, ax = _figure(
        "Database size: measured (snapshots) and projected at the last 28 days' growth"
    )
    if t is None or t.latest is None:
        _empty(ax, "no size snapshot in the last 8 weeks")
        return _png(fig)
    mib = 1024 * 1024
    ax.plot(
        [date2num(s.at) for s in t.snapshots],
        [s.database_bytes / mib for s in t.snapshots],
        marker="o",
        label="measured",
    )
    ahead = [th.on for th in t.thresholds if th.on is not None]
    if ahead:
        end = max(ahead)
        rate = t.growth_per_week or 0.0
        weeks = (end - t.latest.at).total_seconds() / (7 * 24 * 3600)
        ax.plot(
            [date2num(t.latest.at), date2num(end)],
            [t.latest.database_bytes / mib, (t.latest.database_bytes + rate * weeks) / mib],
            linestyle="--",
            color="0.4",
            label="projected (current growth)",
        )
    for th, color in zip(t.thresholds, ("tab:orange", "tab:red"), strict=False):
        ax.axhline(th.bytes / mib, color=color, linewidth=1, label=f"{th.name} ({th.fraction:.0%})")
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    ax.set_ylabel("MiB")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


CHARTS = {
    "ingested_per_day": ingested_per_day,
    "check_pass_rate": check_pass_rate,
    "staged_growth": staged_growth,
    "metric_per_version": metric_per_version,
    "size_projection": size_projection,
}


def draw_all(figures: Figures) -> dict[str, bytes]:
    """Every chart of the report, by name, as PNG bytes."""
    return {name: draw(figures) for name, draw in CHARTS.items()}
