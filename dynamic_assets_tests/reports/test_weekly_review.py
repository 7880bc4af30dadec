"""The weekly review against a known history: the Markdown figures, the charts, the files in the
drive."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image

from dynamic_assets.declarations.model import Freshness
from dynamic_assets.drive import LocalDrive
from dynamic_assets.reports import write_review
from dynamic_assets.reports.charts import HEIGHT_PX, WIDTH_PX
from dynamic_assets_tests.reports.history import DRIFT, SECRET_VALUE, build_history


@pytest.fixture
def fresh_decls(decls):
    """The demo declarations with a two-day freshness policy on `market` and `corpus`."""
    for name in ("market", "corpus"):
        decls.dataset(name).freshness = Freshness(max_days_between_versions=2)
    return decls


@pytest.fixture
def reviewed(db, drive_root, fresh_decls):
    now, expected = build_history(db, drive_root, fresh_decls)
    review = write_review(db, LocalDrive(drive_root), fresh_decls, now=now)
    return review, expected, drive_root


def _line(md: str, label: str) -> str:
    m = re.search(rf"^- {re.escape(label)}: (.*)$", md, re.M)
    assert m, f"no line {label!r} in\n{md}"
    return m.group(1)


def test_markdown_figures_are_the_histories(reviewed):
    review, exp, _ = reviewed
    md = review.markdown
    assert _line(md, "versions curated") == str(exp.versions)
    assert _line(md, "files curated") == str(exp.files)
    assert _line(md, "bytes staged").split(" ")[0] == str(exp.bytes_staged)
    assert _line(md, "failed steps") == str(exp.failures)
    assert _line(md, "files quarantined") == str(exp.quarantined)
    p50, p95 = np.percentile(exp.latencies, [50, 95])
    assert _line(md, "latency p50") == f"{p50:.1f} s"
    assert _line(md, "latency p95") == f"{p95:.1f} s"
    assert review.figures.sync.latency_p50_s == pytest.approx(p50)
    assert review.figures.sync.latency_p95_s == pytest.approx(p95)
    assert "2 × row 3, column close: 'abc' is not a float" in md
    # Data quality: the demo's stage runs all passed; the history added one failing run.
    q = review.figures.quality
    demo_checks = sum(c.runs for c in q.checks) - 4
    assert _line(md, "checks passed").startswith(f"{demo_checks + 2}/{demo_checks + 4} ")
    assert _line(md, "rows rejected") == str(exp.rows_rejected)
    assert _line(md, "schema drift events") == "1"
    assert [(d.dataset, d.version, d.message) for d in q.drift] == [("market", "2024-08-03", DRIFT)]
    assert _line(md, "expectation failures") == "1"
    assert "  - close_between: 1" in md
    # Training: one run this week (the other is two weeks old).
    assert _line(md, "market_next_return") == "1 run(s)"
    # Provenance: nothing attested; every curated version waits for attestation.
    assert _line(md, "attested") == "0"
    assert _line(md, "waiting for attestation") == str(exp.versions + 3)
    # Freshness: the demo's versions were curated just now.
    assert _line(md, "market").startswith("fresh")
    assert _line(md, "corpus").startswith("fresh")


def test_sensitive_values_never_reach_the_report(reviewed, drive_root):
    review, _, root = reviewed
    html = (root / review.html_path).read_text()
    md = (root / review.markdown_path).read_text()
    for text in (html, md, repr(review.figures)):
        assert SECRET_VALUE not in text
    assert any("withheld" in r.reason for r in review.figures.sync.quarantine_reasons)


def test_report_files_are_in_the_drive_under_the_naming_convention(reviewed):
    review, _, root = reviewed
    name = r"dynamic-assets_report_weekly-review_\d{4}-\d{2}-\d{2}_\d{6}Z"
    assert re.fullmatch(rf"reports/{name}\.html", review.html_path)
    assert re.fullmatch(rf"reports/{name}\.md", review.markdown_path)
    html = (root / review.html_path).read_text()
    assert "<script" not in html.lower()
    assert html.count("data:image/png;base64,") == 5
    assert (root / review.markdown_path).read_text() == review.markdown


def test_each_chart_is_a_png_of_the_size_that_is_not_blank(reviewed):
    review, _, _ = reviewed
    assert set(review.charts) == {
        "ingested_per_day",
        "check_pass_rate",
        "staged_growth",
        "metric_per_version",
        "size_projection",
    }
    for name, png in review.charts.items():
        assert png[:8] == b"\x89PNG\r\n\x1a\n", name
        image = Image.open(io.BytesIO(png))
        assert image.size == (WIDTH_PX, HEIGHT_PX), name
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        colours = np.unique(pixels, axis=0)
        assert len(colours) > 10, f"{name} has {len(colours)} colour(s)"


def test_window_excludes_older_weeks(db, drive_root, fresh_decls):
    now, _ = build_history(db, drive_root, fresh_decls)
    old = write_review(
        db,
        LocalDrive(drive_root),
        fresh_decls,
        now=now - timedelta(days=14),
        window=timedelta(days=7),
    )
    # Only the history's week-3 version (21 days before now) lies in [now-21d, now-14d).
    assert old.figures.sync.versions == 1
    assert old.figures.sync.files == 2
    assert old.figures.sync.failures == 1
    # Fourteen days back, market's newest version was seven days old: late for a 2-day policy;
    # corpus had none yet.
    assert _line(old.markdown, "market").startswith("LATE (latest 2024-03-15")
    assert _line(old.markdown, "corpus").startswith("LATE (latest none")


def test_two_reviews_in_the_same_second_are_both_kept(db, tmp_path, decls):
    from datetime import UTC, datetime

    drive = LocalDrive(tmp_path / "drive")
    at = datetime(2026, 11, 30, 14, 44, 37, tzinfo=UTC)
    first = write_review(db, drive, decls, now=at)
    second = write_review(db, drive, decls, now=at, window=timedelta(days=35))
    assert first.html_path.endswith("_2026-11-30_144437Z.html")
    assert second.html_path.endswith("_2026-11-30_144437Z-2.html")
    assert second.markdown_path.endswith("_2026-11-30_144437Z-2.md")
    for review in (first, second):
        for path in (review.html_path, review.markdown_path):
            assert (tmp_path / "drive" / path).stat().st_size > 0
    assert second.html_path in (tmp_path / "drive" / second.markdown_path).read_text()
