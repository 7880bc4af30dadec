"""The README's screenshots of the Dagster UI, taken with headless Chromium from a running
`dynamic-assets dev` on the seeded demo.

Prepare the demo (a third market version with one negative close price, so that a check fails)
and start the UI, then run this script from the repository root:

    export DYNAMIC_ASSETS_HOME=/tmp/demo/home DYNAMIC_ASSETS_DRIVE=/tmp/demo/drive
    dynamic-assets seed
    cp -r $DYNAMIC_ASSETS_DRIVE/datasets/market/2024-07-01 $DYNAMIC_ASSETS_DRIVE/datasets/market/2024-08-01
    sed -i '5s/,33.20,/,-33.20,/' $DYNAMIC_ASSETS_DRIVE/datasets/market/2024-08-01/nasdaq.csv
    dynamic-assets dev --port 3000 &
    apt-get install -y chromium && pip install -e ".[docs]"
    python docs/screenshots.py --url http://127.0.0.1:3000

The script waits until the drive sensor has curated the good versions and failed the bad one,
then writes docs/img/{asset-graph,curated-asset,failed-check,runs}.png.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import requests
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

IMG = Path(__file__).resolve().parent / "img"
CHROMIUM = "/usr/bin/chromium"
LOCATION = "__repository__@dynamic_assets.definitions"
BAD_VERSION = "2024-08-01"
GOOD_VERSION = "2024-07-01"
WAIT_SECONDS = 1200

STATUSES = """
query ($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetPartitionStatuses {
      ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
    }
  }
}
"""

PAGES = {
    "asset-graph": f"/locations/{LOCATION}/asset-groups/market",
    "curated-asset": f"/assets/ai_curated/market?view=partitions&partition={GOOD_VERSION}",
    "failed-check": "/assets/ai_raw/market?view=checks&checkDetail=close_between",
    "runs": "/runs",
}


def statuses(url: str, key: str) -> dict[str, list[str]]:
    response = requests.post(
        f"{url}/graphql",
        json={"query": STATUSES, "variables": {"path": key.split("/")}},
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["data"]["assetNodes"][0]["assetPartitionStatuses"]


def wait_for_demo(url: str) -> None:
    """Until the drive sensor's runs have curated market's good versions and failed the bad."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        raw = statuses(url, "ai_raw/market")
        curated = statuses(url, "ai_curated/market")
        if (
            BAD_VERSION in raw["failedPartitions"]
            and GOOD_VERSION in (curated["materializedPartitions"])
        ):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the demo did not settle: ai_raw/market {raw}")
        time.sleep(5)


def dismiss_sign_up(page: Page) -> None:
    """Close the community sign-up dialog the UI opens on a browser's first visits."""
    with contextlib.suppress(PlaywrightTimeout):  # not shown
        page.get_by_role("button", name="Skip").first.click(timeout=10_000)


def shoot(page: Page, url: str, name: str, path: str, out: Path) -> Path:
    page.goto(url + path, wait_until="networkidle")
    page.wait_for_timeout(3000)  # the graph's layout and the lazy panels draw after the data
    if page.get_by_role("button", name="Skip").count():
        dismiss_sign_up(page)
    target = out / f"{name}.png"
    page.screenshot(path=str(target))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="the running UI")
    parser.add_argument("--out", type=Path, default=IMG, help="where the PNGs go")
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium executable")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    args.out.mkdir(parents=True, exist_ok=True)
    wait_for_demo(url)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.goto(url + "/runs", wait_until="networkidle")
        dismiss_sign_up(page)
        for name, path in PAGES.items():
            print(shoot(page, url, name, path, args.out))
        browser.close()


if __name__ == "__main__":
    main()
