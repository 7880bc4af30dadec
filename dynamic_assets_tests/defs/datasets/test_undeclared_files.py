"""Files of datasets the declarations leave out, as the drive sensor and the reconcile schedule
record them: a config without a curated dataset rewrites none of its rows and names the dataset
once; a file that arrived meanwhile is recorded with its version and taken like any new file when
the dataset is declared again; and no fingerprint is computed over fewer source files than the
curated rows came from."""

from __future__ import annotations

import pytest

from dynamic_assets.datasets import pipeline, registry
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive.discovery import discover
from dynamic_assets.provenance.fingerprint import FingerprintError, compute_fingerprint
from dynamic_assets_tests.support.staging import curate_version


def without(decls: Declarations, name: str) -> Declarations:
    data = decls.model_dump(mode="json")
    data["datasets"] = [d for d in data["datasets"] if d["name"] != name]
    data["models"] = [m for m in data["models"] if m["dataset"] != name]
    return Declarations.model_validate(data)


def ingest_rows(db) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT path, etag, dataset, version, status, error, file_format "
            "FROM public.onedrive_ingest ORDER BY path, etag"
        ).fetchall()


def test_leaving_a_curated_dataset_out_keeps_its_rows_and_names_it_once(db, drive, decls):
    curate_version(db, drive, decls, "market", "2024-06-01")
    curated = ingest_rows(db)
    assert {r[4] for r in curated} == {"curated"}
    left_out = without(decls, "market")

    found = discover(drive, left_out)
    with db.connect() as conn:  # what the drive sensor records for each file not taken
        registry.record_problems(conn, found.problems)
    recorded = {r[0]: r for r in ingest_rows(db)}
    for row in curated:
        assert recorded[row[0]] == row

    found = discover(drive, left_out)
    pending, quarantined = pipeline.outstanding(db, found)
    assert not [v for v in pending if v.dataset == "market"] and quarantined == []
    market = [p for p in found.problems if p.dataset == "market"]
    named = [p for p in market if p.path == "datasets/market"]
    assert len(named) == 1 and named[0].status == "ignored"
    assert "'market' is not declared" in named[0].reason
    # Files never recorded (the version not yet run) are still named, each with its version.
    others = sorted((p.path, p.status, p.version) for p in market if p is not named[0])
    assert others and {(s, v) for _, s, v in others} == {("undeclared", "2024-07-01")}
    assert not any(path.startswith("datasets/market/2024-06-01/") for path, _, _ in others)

    # Declared again: the version recorded as undeclared is taken like any new file.
    newer = [p for p in market if p.version == "2024-07-01"]
    for p in newer:
        assert recorded[p.path][2:5] == ("market", "2024-07-01", "undeclared")
    again = discover(drive, decls)
    pending, _ = pipeline.outstanding(db, again)
    assert [(v.dataset, v.version) for v in pending if v.dataset == "market"] == [
        ("market", "2024-07-01")
    ]
    pipeline.record_manifest(db, drive, decls, decls.dataset("market"), "2024-07-01")
    taken = {r[0]: r for r in ingest_rows(db)}
    for p in newer:
        assert taken[p.path][2:] == ("market", "2024-07-01", "pending", None, "csv")


def test_a_fingerprint_over_fewer_files_than_the_curated_rows_came_from_fails(db, drive, decls):
    curate_version(db, drive, decls, "market", "2024-06-01")
    ds = decls.dataset("market")
    with db.connect() as conn:
        paths = [
            r[0]
            for r in conn.execute(
                "SELECT path FROM public.onedrive_ingest WHERE dataset = 'market' "
                "AND version = '2024-06-01' AND status = 'curated' ORDER BY path"
            ).fetchall()
        ]
        assert len(compute_fingerprint(conn, ds, "2024-06-01").files) == len(paths) > 0
        # One source file recorded without its version, as a file of a dataset declared after
        # it arrived was curated before.
        conn.execute(
            "UPDATE public.onedrive_ingest SET version = NULL, file_format = NULL WHERE path = %s",
            (paths[0],),
        )
        with pytest.raises(FingerprintError) as one:
            compute_fingerprint(conn, ds, "2024-06-01")
        assert paths[0] in str(one.value) and "market 2024-06-01" in str(one.value)
        # None of them listed: never a fingerprint over 0 files for a version with rows.
        conn.execute(
            "UPDATE public.onedrive_ingest SET version = NULL WHERE dataset = 'market' "
            "AND version = '2024-06-01'"
        )
        with pytest.raises(FingerprintError) as none:
            compute_fingerprint(conn, ds, "2024-06-01")
        assert f"{len(paths)} source file(s)" in str(none.value)
        assert "run --all --dataset market --version 2024-06-01" in str(none.value)

    # Running the version again, as the message says, takes its files with their version.
    curate_version(db, drive, decls, "market", "2024-06-01")
    with db.connect() as conn:
        files = compute_fingerprint(conn, ds, "2024-06-01").files
    assert [f["path"] for f in files] == paths
