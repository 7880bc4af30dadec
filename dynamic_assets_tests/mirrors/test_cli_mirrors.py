"""`dynamic-assets run` mirrors what it curated; `verify --mirror` proves a mirrored object is the
fingerprinted data, and names the step that fails when the object changed behind our back."""

from __future__ import annotations

import hashlib
import io

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from dynamic_assets.cli import main
from dynamic_assets.mirrors.publish import mirror_version
from dynamic_assets_tests.mirrors.conftest import BUCKET
from dynamic_assets_tests.support.staging import curate_and_fingerprint

V = "2024-06-01"


def _cli(tmp_path, db_url, drive_root, decls, *args):
    config = tmp_path / "declarations.yaml"
    config.write_text(yaml.safe_dump(decls.model_dump(mode="json", exclude_defaults=True)))
    env = {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(drive_root),
        "DYNAMIC_ASSETS_CONFIG": str(config),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
        "TON_MNEMONIC": "",
    }
    return CliRunner().invoke(main, list(args), env=env)


def test_verify_mirror_passes_then_names_the_step_that_fails(
    tmp_path, db, db_url, drive, drive_root, decls, mirror_decls, s3
):
    curate_and_fingerprint(db, drive, decls, "market", V)
    placed = mirror_version(db, mirror_decls, "market", V, "spaces").placed
    ok = _cli(
        tmp_path, db_url, drive_root, mirror_decls, "verify", "market", V, "--mirror", "spaces"
    )
    assert ok.exit_code == 0, ok.output
    assert "VERIFIED" in ok.output and placed.url in ok.output.replace("\n", "")

    # Another file behind our back: one close price changed, the recorded SHA-256 kept.
    client = s3.client()
    table = pq.read_table(
        io.BytesIO(client.get_object(Bucket=BUCKET, Key=placed.key)["Body"].read())
    )
    close = table["close"].to_pylist()
    close[0] += 1.0
    altered = table.set_column(
        table.schema.get_field_index("close"), table.schema.field("close"), [close]
    )
    out = io.BytesIO()
    pq.write_table(altered, out)
    data = out.getvalue()
    client.put_object(Bucket=BUCKET, Key=placed.key, Body=data, Metadata={"sha256": placed.sha256})
    bad = _cli(
        tmp_path, db_url, drive_root, mirror_decls, "verify", "market", V, "--mirror", "spaces"
    )
    assert bad.exit_code == 1
    assert "FAILED at step sha256: mirror spaces: market 2024-06-01" in bad.output.replace("\n", "")

    # The registry's record changed to match the altered file too: the rows still give it away.
    with db.connect() as conn:
        conn.execute(
            "UPDATE datasets SET platform_locations = platform_locations || %s "
            "WHERE name = 'market' AND version = %s",
            (
                Jsonb(
                    {
                        "spaces": {
                            "url": placed.url,
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "size_bytes": len(data),
                            "fingerprint": conn.execute(
                                "SELECT fingerprint FROM datasets WHERE name = 'market' "
                                "AND version = %s",
                                (V,),
                            ).fetchone()[0],
                        }
                    }
                ),
                V,
            ),
        )
    forged = _cli(
        tmp_path, db_url, drive_root, mirror_decls, "verify", "market", V, "--mirror", "spaces"
    )
    assert forged.exit_code == 1
    assert "FAILED at step content digest" in forged.output.replace("\n", "")
    assert pc.sum(altered["close"]).as_py() != pc.sum(table["close"]).as_py()


def test_run_mirrors_what_it_curated(tmp_path, db, db_url, drive_root, mirror_decls, s3):
    first = _cli(
        tmp_path, db_url, drive_root, mirror_decls, "run", "--dataset", "market", "--no-train"
    )
    assert first.exit_code == 0, first.output
    assert "mirrors" in first.output and "uploaded" in first.output
    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"])
    with db.connect() as conn:
        versions = [
            r[0]
            for r in conn.execute(
                "SELECT version FROM datasets WHERE name = 'market' AND platform_locations ? 'spaces' "
                "ORDER BY version"
            ).fetchall()
        ]
    assert versions and keys == sorted(
        ["datasets/market/latest"]
        + [k for k in keys if k != "datasets/market/latest" and k.split("/")[2] in versions]
    )
    assert len(keys) == len(versions) + 1
    s3.log.requests.clear()
    again = _cli(
        tmp_path, db_url, drive_root, mirror_decls, "run", "--dataset", "market", "--no-train"
    )
    assert again.exit_code == 0, again.output
    assert s3.log.uploads() == [] and "mirrors" not in again.output
