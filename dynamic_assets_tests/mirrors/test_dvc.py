"""A `kind: dvc` platform: per version a `.dvc` metafile in the code repository, the object at
the remote's content-addressed key and the remote in `.dvc/config`; the real `dvc pull` (the
`interop` extra) fetches byte-identical files from the local S3 server."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import yaml

from dynamic_assets.declarations.model import Declarations
from dynamic_assets.mirrors.dvc import track_version
from dynamic_assets.mirrors.publish import mirror_version
from dynamic_assets_tests.mirrors.conftest import BUCKET
from dynamic_assets_tests.mirrors.test_cli_mirrors import _cli
from dynamic_assets_tests.support.staging import curate_and_fingerprint

V1, V2 = "2024-06-01", "2024-07-01"


@pytest.fixture
def dvc_decls(mirror_decls, tmp_path) -> Declarations:
    raw = mirror_decls.model_dump(mode="json", exclude_defaults=True)
    raw["platforms"]["dvc"] = {"kind": "dvc", "repo_path": "ai-project", "remote": "spaces"}
    (tmp_path / "ai-project").mkdir()
    return Declarations.model_validate(raw)


def _dvc(repo, s3, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "spaces-key",
        "AWS_SECRET_ACCESS_KEY": "spaces-secret-value",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(repo / ".site-cache"),
    }
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_metafile_and_remote_object_follow_dvc_3_layout(tmp_path, db, drive, decls, dvc_decls, s3):
    curate_and_fingerprint(db, drive, decls, "market", V1)
    placed = mirror_version(db, dvc_decls, "market", V1, "spaces").placed
    mirrored = s3.client().get_object(Bucket=BUCKET, Key=placed.key)["Body"].read()
    md5 = hashlib.md5(mirrored, usedforsecurity=False).hexdigest()

    done = track_version(db, dvc_decls, "market", V1, "dvc", base=tmp_path)
    repo = tmp_path / "ai-project"
    meta = yaml.safe_load((repo / "datasets/market/market_2024-06-01.parquet.dvc").read_text())
    assert meta == {
        "outs": [
            {"md5": md5, "size": len(mirrored), "hash": "md5", "path": "market_2024-06-01.parquet"}
        ]
    }
    key = f"datasets/files/md5/{md5[:2]}/{md5[2:]}"
    assert s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read() == mirrored
    assert done.url == f"s3://{BUCKET}/{key}"
    config = (repo / ".dvc" / "config").read_text()
    assert "['remote \"spaces\"']" in config
    assert f"url = s3://{BUCKET}/datasets" in config
    assert f"endpointurl = {s3.url.rstrip('/')}" in config
    assert "spaces-secret-value" not in config and "spaces-key" not in config
    assert "/market_2024-06-01.parquet" in (repo / "datasets/market/.gitignore").read_text()
    with db.connect() as conn:
        recorded = conn.execute(
            "SELECT platform_locations -> 'dvc' FROM datasets WHERE name = 'market' "
            "AND version = %s",
            (V1,),
        ).fetchone()[0]
    assert recorded["md5"] == md5 and recorded["url"] == done.url
    assert recorded["metafile"] == "datasets/market/market_2024-06-01.parquet.dvc"

    # Tracked again: the same object, not uploaded again.
    again = track_version(db, dvc_decls, "market", V1, "dvc", base=tmp_path)
    assert (again.md5, again.uploaded) == (md5, False)


def test_real_dvc_pull_fetches_byte_identical_files(tmp_path, db, drive, decls, dvc_decls, s3):
    pytest.importorskip("dvc", reason="the real dvc comes with the interop extra")
    repo = tmp_path / "ai-project"
    init = _dvc(repo, s3, "init", "--no-scm")
    assert init.returncode == 0, init.stderr
    expected = {}
    for version in (V1, V2):
        curate_and_fingerprint(db, drive, decls, "market", version)
        placed = mirror_version(db, dvc_decls, "market", version, "spaces").placed
        expected[version] = s3.client().get_object(Bucket=BUCKET, Key=placed.key)["Body"].read()
        track_version(db, dvc_decls, "market", version, "dvc", base=tmp_path)

    pulled = _dvc(repo, s3, "pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    for version, data in expected.items():
        got = (repo / "datasets" / "market" / f"market_{version}.parquet").read_bytes()
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    status = _dvc(repo, s3, "status", "--cloud")
    assert status.returncode == 0, status.stderr
    assert "in sync" in status.stdout.lower()


def test_run_tracks_what_it_curated_in_the_dvc_repository(
    tmp_path, db, db_url, drive_root, dvc_decls, s3
):
    first = _cli(
        tmp_path, db_url, drive_root, dvc_decls, "run", "--dataset", "market", "--no-train"
    )
    assert first.exit_code == 0, first.output
    repo = tmp_path / "ai-project"  # repo_path, relative to the declarations file's folder
    with db.connect() as conn:
        tracked = conn.execute(
            "SELECT version, platform_locations -> 'dvc' ->> 'md5' FROM datasets "
            "WHERE name = 'market' AND status = 'curated' ORDER BY version"
        ).fetchall()
    assert [v for v, _ in tracked] == [V1, V2]
    for version, md5 in tracked:
        meta = yaml.safe_load((repo / f"datasets/market/market_{version}.parquet.dvc").read_text())
        assert meta["outs"][0]["md5"] == md5
    written = {p: p.stat().st_mtime_ns for p in repo.rglob("*.dvc")}
    s3.log.requests.clear()
    again = _cli(
        tmp_path, db_url, drive_root, dvc_decls, "run", "--dataset", "market", "--no-train"
    )
    assert again.exit_code == 0, again.output
    # Nothing new: no upload, no metafile written again.
    assert s3.log.uploads() == []
    assert {p: p.stat().st_mtime_ns for p in repo.rglob("*.dvc")} == written


def test_status_shows_each_version_on_the_dvc_platform(tmp_path, db, db_url, drive_root, dvc_decls):
    run = _cli(tmp_path, db_url, drive_root, dvc_decls, "run", "--dataset", "market", "--no-train")
    assert run.exit_code == 0, run.output
    repo = tmp_path / "ai-project"
    rows = _dvc_rows(_cli(tmp_path, db_url, drive_root, dvc_decls, "status", "--json").output)
    assert rows == {V1: "mirrored", V2: "mirrored"}

    # Behind our back: one metafile edited to name other bytes, another deleted.
    edited = repo / f"datasets/market/market_{V1}.parquet.dvc"
    meta = yaml.safe_load(edited.read_text())
    meta["outs"][0]["md5"] = "0" * 32
    edited.write_text(yaml.safe_dump(meta))
    (repo / f"datasets/market/market_{V2}.parquet.dvc").unlink()
    status = _cli(tmp_path, db_url, drive_root, dvc_decls, "status")
    text = " ".join(status.output.split())
    assert status.exit_code == 1
    assert f"market {V1} dvc changed" in text and f"market {V2} dvc missing" in text


def _dvc_rows(output: str) -> dict[str, str]:
    import json

    return {
        m["version"]: m["state"]
        for h in json.loads(output)
        if h["dataset"] == "market"
        for m in h["mirrors"]
        if m["platform"] == "dvc"
    }
