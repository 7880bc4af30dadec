"""Files deleted from the drive after their version was curated: `dynamic-assets run` names each
deletion, records the file `deleted` with the time, and curates the version again from the files
that remain (new fingerprint, new attestation, `verify` passes). A version whose files are all
gone keeps its curated rows, and `status` names it and is not green."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path

import yaml
from click.testing import CliRunner

from dynamic_assets.cli import main

TRADES = {
    "name": "trades",
    "description": "Fills, one CSV file per desk.",
    "formats": ["csv"],
    "columns": [
        {"name": "trade_id", "type": "integer", "nullable": False},
        {"name": "side", "type": "string", "nullable": False},
        {"name": "qty", "type": "integer", "nullable": False},
    ],
    "primary_key": ["trade_id"],
    "sensitivity": "internal",
}
CSV_A = "trade_id,side,qty\n1,buy,10\n2,sell,5\n3,buy,7\n"
CSV_B = "trade_id,side,qty\n4,sell,2\n"
SOURCE_A = "datasets/trades/v1.0/desk_a.csv"
SOURCE_B = "datasets/trades/v1.0/desk_b.csv"


def cli(tmp_path: Path, db_url: str, *args: str):
    config = tmp_path / "datasets.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump({"datasets": [TRADES]}, sort_keys=False), "utf-8")
    env = {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(tmp_path / "drive"),
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": db_url,
        "ATTESTATION_PUBLIC_KEY": "",
        "TON_MNEMONIC": "",
        "TON_API_URL": "",
        "DAGSTER_HOME": "",
    }
    return CliRunner().invoke(main, list(args), env=env)


def curated_two_files(tmp_path: Path, db_url: str, db) -> dict:
    for path, text in ((SOURCE_A, CSV_A), (SOURCE_B, CSV_B)):
        target = tmp_path / "drive" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    first = cli(tmp_path, db_url, "run", "--no-train")
    assert first.exit_code == 0, first.output
    return version_row(db)


def version_row(db) -> dict:
    with db.connect() as conn:
        fingerprint, record, rows = conn.execute(
            "SELECT fingerprint, fingerprint_record, row_count FROM public.datasets "
            "WHERE name = 'trades' AND version = 'v1.0'"
        ).fetchone()
        trade_ids = [
            r[0]
            for r in conn.execute(
                "SELECT trade_id FROM ai_curated.trades WHERE dataset_version = 'v1.0' "
                "ORDER BY trade_id"
            ).fetchall()
        ]
        proofs = conn.execute(
            "SELECT fingerprint FROM public.dataset_proofs "
            "WHERE dataset = 'trades' AND version = 'v1.0' ORDER BY id"
        ).fetchall()
        files = {
            path: (status, deleted_at)
            for path, status, deleted_at in conn.execute(
                "SELECT path, status, deleted_at FROM public.onedrive_ingest "
                "WHERE dataset = 'trades' AND version = 'v1.0' AND path LIKE '%%.csv'"
            ).fetchall()
        }
    return {
        "fingerprint": fingerprint,
        "record": record,
        "rows": rows,
        "trade_ids": trade_ids,
        "proofs": [p[0] for p in proofs],
        "files": files,
    }


def test_a_deleted_file_is_named_recorded_and_its_version_curated_from_the_rest(
    tmp_path, db_url, db
):
    before = curated_two_files(tmp_path, db_url, db)
    assert before["trade_ids"] == [1, 2, 3, 4]
    assert len(before["record"]["files"]) == 2

    (tmp_path / "drive" / SOURCE_B).unlink()
    after_run = cli(tmp_path, db_url, "run", "--no-train")
    assert after_run.exit_code == 0, after_run.output
    assert f"{SOURCE_B}: deleted from the drive" in after_run.output
    assert any(
        "trades" in ln and "v1.0" in ln and "curated" in ln for ln in after_run.output.splitlines()
    ), after_run.output

    after = version_row(db)
    assert after["trade_ids"] == [1, 2, 3]  # the remaining file's rows only
    assert after["rows"] == 3
    status, deleted_at = after["files"][SOURCE_B]
    assert status == "deleted" and isinstance(deleted_at, datetime)
    assert after["files"][SOURCE_A] == ("curated", None)
    assert after["fingerprint"] and after["fingerprint"] != before["fingerprint"]
    assert after["record"]["files"] == [
        {
            "path": SOURCE_A,
            "sha256": hashlib.sha256(CSV_A.encode()).hexdigest(),
            "size_bytes": len(CSV_A.encode()),
        }
    ]
    assert after["proofs"] == [before["fingerprint"], after["fingerprint"]]  # attested again

    verified = cli(tmp_path, db_url, "verify", "trades", "v1.0")
    assert verified.exit_code == 0, verified.output + verified.stderr

    # Recorded once: the next run has nothing new and does not name the file again.
    again = cli(tmp_path, db_url, "run", "--no-train")
    assert again.exit_code == 0, again.output
    assert "Nothing new" in again.output and SOURCE_B not in again.output
    assert version_row(db)["fingerprint"] == after["fingerprint"]


def test_a_version_whose_files_are_all_deleted_keeps_its_rows_and_status_names_it(
    tmp_path, db_url, db
):
    before = curated_two_files(tmp_path, db_url, db)
    green = cli(tmp_path, db_url, "status", "--json")
    assert green.exit_code == 0, green.output

    shutil.rmtree(tmp_path / "drive" / "datasets" / "trades" / "v1.0")
    after_run = cli(tmp_path, db_url, "run", "--no-train")
    assert f"{SOURCE_A}: deleted from the drive" in after_run.output
    assert f"{SOURCE_B}: deleted from the drive" in after_run.output
    assert (
        "trades v1.0: every source file was deleted from the drive; its curated rows are kept"
        in after_run.output
    ), after_run.output

    after = version_row(db)
    assert after["trade_ids"] == before["trade_ids"] == [1, 2, 3, 4]  # kept
    assert after["fingerprint"] == before["fingerprint"]
    assert {p: s for p, (s, _) in after["files"].items()} == {
        SOURCE_A: "deleted",
        SOURCE_B: "deleted",
    }
    assert all(isinstance(at, datetime) for _, at in after["files"].values())

    shown = cli(tmp_path, db_url, "status")
    assert shown.exit_code == 1, shown.output
    assert "trades v1.0  every source file was deleted from the drive" in shown.output
    as_json = cli(tmp_path, db_url, "status", "--json")
    assert as_json.exit_code == 1
    (trades,) = json.loads(as_json.stdout)
    assert trades["sources_deleted"] == ["v1.0"]
    assert trades["latest_version"] == "v1.0"  # still curated, still readable

    # The files come back: the version runs again and status is green again.
    for path, text in ((SOURCE_A, CSV_A), (SOURCE_B, CSV_B)):
        target = tmp_path / "drive" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    back = cli(tmp_path, db_url, "run", "--no-train")
    assert back.exit_code == 0, back.output
    assert cli(tmp_path, db_url, "status").exit_code == 0
    assert version_row(db)["trade_ids"] == [1, 2, 3, 4]
