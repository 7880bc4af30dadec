"""A drive file or folder whose name is not UTF-8 (Linux lists it with surrogate escapes) is
refused and named like any other refused name; it never stops a listing, a run or a record."""

from __future__ import annotations

import os

from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.drive import LocalDrive
from dynamic_assets.drive.discovery import discover
from dynamic_assets_tests.cli.test_cli import env

CSV = (
    "date,symbol,exchange,open,high,low,close,volume,note\n2024-06-03,ACME,XNAS,1,2,0.5,1.5,100,\n"
)
NOT_UTF8 = "the name is not valid UTF-8"


def _drive(tmp_path):
    market = tmp_path / "drive" / "datasets" / "market"
    (market / "2024-06-01").mkdir(parents=True)
    (market / "2024-06-01" / "xnas.csv").write_text(CSV, encoding="utf-8")
    base = os.fsencode(market)
    with open(base + b"/2024-06-01/caf\xe9.csv", "wb") as f:
        f.write(CSV.encode())
    os.mkdir(base + b"/2024-06-0\xff")
    with open(base + b"/2024-06-0\xff/xnas.csv", "wb") as f:
        f.write(CSV.encode())
    return tmp_path / "drive"


def test_discovery_refuses_a_name_that_is_not_utf8(tmp_path, decls):
    found = discover(LocalDrive(_drive(tmp_path)), decls)
    refused = {p.path: p.reason for p in found.problems}
    assert refused["datasets/market/2024-06-0\\xff"] == NOT_UTF8
    vf = found.versions["market/2024-06-01"]
    assert [p.path for p in vf.rejected] == ["datasets/market/2024-06-01/caf\\xe9.csv"]
    assert [p.reason for p in vf.rejected] == [NOT_UTF8]
    for p in [*found.problems, *vf.rejected]:
        p.path.encode("utf-8")  # printable and storable: no surrogate left


def test_run_names_and_records_a_name_that_is_not_utf8(tmp_path, db_url, db):
    _drive(tmp_path)
    result = CliRunner().invoke(
        main, ["run", "--dataset", "market", "--no-train"], env=env(tmp_path, db_url)
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert f"  market 2024-06-01  datasets/market/2024-06-01/caf\\xe9.csv: {NOT_UTF8}" in lines
    assert f"  market -  datasets/market/2024-06-0\\xff: {NOT_UTF8}" in lines
    with db.connect() as conn:
        recorded = dict(
            conn.execute(
                "SELECT path, status || ': ' || error FROM public.onedrive_ingest "
                "WHERE dataset = 'market' AND error LIKE '%UTF-8%'"
            ).fetchall()
        )
    assert recorded == {
        "datasets/market/2024-06-01/caf\\xe9.csv": f"quarantined: {NOT_UTF8}",
        "datasets/market/2024-06-0\\xff": f"quarantined: {NOT_UTF8}",
        "datasets/market/2024-06-0\\xff/xnas.csv": f"quarantined: {NOT_UTF8}",
    }
    again = CliRunner().invoke(
        main, ["run", "--dataset", "market", "--no-train"], env=env(tmp_path, db_url)
    )
    assert again.exit_code == 1, again.output
    assert "Traceback" not in again.output


class _Listed:
    def __init__(self, items):
        self.items = items

    def list_tree(self, folder):
        return iter(self.items)


def test_a_graph_name_with_a_lone_surrogate_is_refused_as_text(decls):
    """JSON may carry a lone surrogate (`\\ud800`): the item's path is text a database stores."""
    from dynamic_assets.drive.graph.items import item_from_json

    raw = "datasets/market/2024-06-01/a\ud800.csv"
    item = item_from_json({"id": "1", "name": "a\ud800.csv", "file": {}, "size": 3}, raw)
    assert item.path == "datasets/market/2024-06-01/a\\ud800.csv"
    assert item.name == "a\\ud800.csv"
    found = discover(_Listed([item]), decls)
    vf = found.versions["market/2024-06-01"]
    assert [(p.path, p.reason) for p in vf.rejected] == [
        ("datasets/market/2024-06-01/a\\ud800.csv", "the name contains a path separator")
    ]
