"""`dynamic-assets run` over version folders that look like versions but are not: each is named
on stderr with the reason, recorded as quarantined in `onedrive_ingest`, and nothing is curated
for it."""

from __future__ import annotations

from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets_tests.cli.test_cli import env

CSV = (
    "date,symbol,exchange,open,high,low,close,volume,note\n2024-06-03,ACME,XNAS,1,2,0.5,1.5,100,\n"
)
REFUSED = {
    "v\uff11.0": "ASCII digits only",  # fullwidth digit one
    "v\u0661.\u0662": "ASCII digits only",  # Arabic-Indic digits one and two
    "v01.00": "leading zeros",
    "2030-02-30": "not a calendar date",
    "2024-06-01 ": "leading or trailing space",
}


def test_run_names_each_refused_version_folder_and_curates_nothing_for_it(tmp_path, db_url, db):
    market = tmp_path / "drive" / "datasets" / "market"
    for name in ["v1.0", *REFUSED]:
        (market / name).mkdir(parents=True)
        (market / name / "xnas.csv").write_text(CSV, encoding="utf-8")

    result = CliRunner().invoke(
        main, ["run", "--dataset", "market", "--no-train"], env=env(tmp_path, db_url)
    )

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any("v1.0" in ln and "curated" in ln for ln in lines)
    for name, says in REFUSED.items():
        line = next(ln for ln in lines if f"datasets/market/{name}: " in ln)
        assert f"{name!r} is not a version" in line and says in line, line
    with db.connect() as conn:
        curated = conn.execute(
            "SELECT DISTINCT dataset_version FROM ai_curated.market ORDER BY 1"
        ).fetchall()
        recorded = dict(
            conn.execute(
                "SELECT path, status || ': ' || error FROM public.onedrive_ingest "
                "WHERE dataset = 'market' AND version IS NULL"
            ).fetchall()
        )
    assert curated == [("v1.0",)]
    for name, says in REFUSED.items():
        for path in (f"datasets/market/{name}", f"datasets/market/{name}/xnas.csv"):
            assert recorded[path].startswith("quarantined: "), (path, recorded[path])
            assert says in recorded[path]


def test_status_names_a_folder_the_drive_sensor_passed_over(tmp_path, db_url, defs, instance):
    from dynamic_assets_tests.support.runs import tick

    folder = tmp_path / "drive" / "datasets" / "market" / "v1x"  # the `defs` fixture's drive
    folder.mkdir(parents=True)
    (folder / "xnas.csv").write_text(CSV, encoding="utf-8")
    tick(defs, instance)

    result = CliRunner().invoke(main, ["status"], env=env(tmp_path, db_url))

    lines = [ln for ln in result.output.splitlines() if "datasets/market/v1x" in ln]
    assert lines == [
        "  market  datasets/market/v1x passed over: 'v1x' is not a version: use a date "
        "(2024-06-01) or v1 / v1.2 / v1.2.3"
    ], result.output
