"""The README's screenshot of the weekly review: the HTML report opened in headless Chromium and
saved as docs/img/weekly_review.png.

Write a review of the seeded demo, then run this script from the repository root:

    export DYNAMIC_ASSETS_HOME=/tmp/demo/home DYNAMIC_ASSETS_DRIVE=/tmp/demo/drive
    dynamic-assets seed && dynamic-assets run && dynamic-assets report
    python docs/review_screenshot.py          # the newest report in $DYNAMIC_ASSETS_DRIVE/reports

or name the page with `--html PATH`. The page needs no JavaScript and no network: its charts are
embedded PNGs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from playwright.sync_api import sync_playwright

IMG = Path(__file__).resolve().parent / "img"
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1100, 1400


def newest_report() -> Path:
    """The newest HTML review in the local drive's reports/ folder."""
    drive = os.environ.get("DYNAMIC_ASSETS_DRIVE")
    if not drive:
        raise SystemExit("give --html PATH or set DYNAMIC_ASSETS_DRIVE")
    pages = sorted((Path(drive) / "reports").glob("dynamic-assets_report_weekly-review_*.html"))
    if not pages:
        raise SystemExit(f"no weekly review in {drive}/reports: run `dynamic-assets report`")
    return pages[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, help="the report page (default: the newest)")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium's executable")
    parser.add_argument("--out", type=Path, default=IMG / "weekly_review.png")
    parser.add_argument("--full-page", action="store_true", help="the whole page, not the top")
    args = parser.parse_args()
    page_path = (args.html or newest_report()).resolve()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        # No request leaves the machine: the page is one self-contained file.
        page.route(
            "**/*",
            lambda route: (
                route.abort()
                if not route.request.url.startswith(("file:", "data:"))
                else route.continue_()
            ),
        )
        page.goto(page_path.as_uri(), wait_until="load")
        page.screenshot(path=str(args.out), full_page=args.full_page)
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
