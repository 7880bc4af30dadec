"""What `run`, `verify` and `lineage` say of what they will not take: every refused folder or
file of the drive is named in `run`'s output and recorded, and an unknown version of a declared
dataset is answered with the versions that exist."""

from __future__ import annotations

from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets_tests.cli.test_cli import env

CSV = (
    "date,symbol,exchange,open,high,low,close,volume,note\n2024-06-03,ACME,XNAS,1,2,0.5,1.5,100,\n"
)


def test_run_names_and_records_every_refused_folder_and_file(tmp_path, db_url, db):
    market = tmp_path / "drive" / "datasets" / "market"
    for folder in ("v1.0", "notaversion"):
        (market / folder).mkdir(parents=True)
        (market / folder / "xnas.csv").write_text(CSV, encoding="utf-8")
    (market / "v1.0" / "xnas.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    (market / "loose.csv").write_text(CSV, encoding="utf-8")

    result = CliRunner().invoke(
        main, ["run", "--dataset", "market", "--no-train"], env=env(tmp_path, db_url)
    )

    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    not_a_version = "'notaversion' is not a version: use a date (2024-06-01) or v1 / v1.2 / v1.2.3"
    loose = "files belong in a version folder, not directly in the dataset folder"
    xls = "unknown file format (extension 'xls'); expected one of csv"
    assert "4 problem(s):" in lines
    assert f"  market -  datasets/market/notaversion: {not_a_version}" in lines
    assert f"  market -  datasets/market/notaversion/xnas.csv: {not_a_version}" in lines
    assert f"  market -  datasets/market/loose.csv: {loose}" in lines
    assert f"  market v1.0  datasets/market/v1.0/xnas.xls: {xls}" in lines
    with db.connect() as conn:
        recorded = dict(
            conn.execute(
                "SELECT path, status || ': ' || error FROM public.onedrive_ingest "
                "WHERE dataset = 'market' AND error IS NOT NULL"
            ).fetchall()
        )
    assert recorded == {
        "datasets/market/notaversion": f"ignored: {not_a_version}",
        "datasets/market/notaversion/xnas.csv": f"ignored: {not_a_version}",
        "datasets/market/loose.csv": f"ignored: {loose}",
        "datasets/market/v1.0/xnas.xls": f"quarantined: {xls}",
        # The good file of the refused version waits, saying which file holds it back.
        "datasets/market/v1.0/xnas.csv": "pending: held back: another file of version v1.0 "
        "failed (datasets/market/v1.0/xnas.xls)",
    }

    again = CliRunner().invoke(
        main, ["run", "--dataset", "market", "--no-train"], env=env(tmp_path, db_url)
    )
    assert again.exit_code == 1, again.output
    assert f"  market -  datasets/market/notaversion: {not_a_version}" in again.output


def test_verify_and_lineage_of_an_unknown_version_list_the_registered_ones(tmp_path, db_url):
    market = tmp_path / "drive" / "datasets" / "market"
    for version in ("v10.0", "v2.0", "v1.0"):
        (market / version).mkdir(parents=True)
        (market / version / "xnas.csv").write_text(CSV, encoding="utf-8")
    runner = CliRunner()
    ran = runner.invoke(
        main, ["run", "--dataset", "market", "--no-train"], env=env(tmp_path, db_url)
    )
    assert ran.exit_code == 0, ran.output

    verified = runner.invoke(main, ["verify", "market", "v3.0"], env=env(tmp_path, db_url))
    assert verified.exit_code == 1, verified.output
    assert verified.stderr.splitlines()[-1] == (
        "FAILED at step record: market v3.0 is not in the datasets registry; "
        "registered versions: v1.0, v2.0, v10.0"
    )
    traced = runner.invoke(main, ["lineage", "market", "v3.0"], env=env(tmp_path, db_url))
    assert traced.exit_code == 1, traced.output
    assert traced.stderr.strip() == (
        "market v3.0 is not in the registry; registered versions: v1.0, v2.0, v10.0"
    )

    empty = runner.invoke(main, ["verify", "corpus", "2024-06-01"], env=env(tmp_path, db_url))
    assert empty.exit_code == 1, empty.output
    assert empty.stderr.splitlines()[-1] == (
        "FAILED at step record: corpus 2024-06-01 is not in the datasets registry; "
        "no version of corpus is registered yet"
    )
    traced = runner.invoke(main, ["lineage", "corpus", "2024-06-01"], env=env(tmp_path, db_url))
    assert traced.exit_code == 1, traced.output
    assert traced.stderr.strip() == (
        "corpus 2024-06-01 is not in the registry; no version of corpus is registered yet"
    )
