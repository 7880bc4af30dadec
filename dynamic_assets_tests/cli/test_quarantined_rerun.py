"""What `run` says of a version still quarantined: nothing new to run, and each file waiting for a
correction with its own reason; `status` names the files at fault, and the files of the version
with nothing wrong record that they are held back, and by which files."""

from __future__ import annotations

from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets_tests.cli.test_cli import env
from dynamic_assets_tests.cli.test_run_alerts import BAD, GOOD, HEADER

VERSION = "2024-06-03"
FOLDER = f"datasets/market/{VERSION}"
REASON = (
    "column volume: 1 value(s) are not a valid integer (first: {path} row {row}: 'lots'); "
    "expected decimal digits with an optional leading - (coerce: true on the column takes "
    "other forms)"
)


def test_a_rerun_of_a_quarantined_version_names_each_file_with_its_own_reason(tmp_path, db_url, db):
    folder = tmp_path / "drive" / FOLDER
    folder.mkdir(parents=True)
    (folder / "xnas.csv").write_text(HEADER + GOOD + BAD, encoding="utf-8")
    (folder / "xnys.csv").write_text(HEADER + BAD.replace("ACME,XNAS", "BETA,XNYS"))
    (folder / "arca.csv").write_text(HEADER + GOOD.replace("ACME,XNAS", "GAMA,ARCA"))
    args = ["run", "--dataset", "market", "--no-train"]
    first = CliRunner().invoke(main, args, env=env(tmp_path, db_url))
    assert first.exit_code == 1, first.output

    again = CliRunner().invoke(main, args, env=env(tmp_path, db_url))

    assert again.exit_code == 1, again.output
    lines = again.output.splitlines()
    assert "Nothing new to run; files the pipeline did not take are listed below." in lines
    assert "reached curated" not in again.output
    assert "2 problem(s):" in lines
    xnas, xnys = f"{FOLDER}/xnas.csv", f"{FOLDER}/xnys.csv"
    assert [ln for ln in lines if ln.startswith(f"  market {VERSION}  ")] == [
        f"  market {VERSION}  {xnas}: still quarantined: " + REASON.format(path=xnas, row=2),
        f"  market {VERSION}  {xnys}: still quarantined: " + REASON.format(path=xnys, row=1),
    ]
    with db.connect() as conn:
        arca = conn.execute(
            "SELECT status, error FROM public.onedrive_ingest WHERE path = %s",
            (f"{FOLDER}/arca.csv",),
        ).fetchone()
    assert arca == (
        "staged",
        f"held back: other files of version {VERSION} failed ({xnas}, {xnys})",
    )
