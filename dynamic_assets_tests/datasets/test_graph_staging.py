"""Staging straight from Graph downloads: rows arrive, and a file whose bytes do not match the
size and hash Graph reported fails by name and leaves nothing visible in Postgres."""

from __future__ import annotations

import pytest

from dynamic_assets.datasets.pipeline import VersionFailed, stage
from dynamic_assets.db.tables import RAW_SCHEMA, partition_exists, partition_name
from dynamic_assets_tests.support.graph_server import seed_from_folder, serve
from dynamic_assets_tests.support.onedrive import ROOT, graph_drive


@pytest.fixture
def graph(tmp_path, monkeypatch, drive_root):
    with serve(tmp_path, monkeypatch) as srv:
        seed_from_folder(srv, drive_root, ROOT)
        yield srv, graph_drive(srv)


CASES = [
    ("market", "2024-06-01", "nyse.csv"),
    ("corpus", "v1.0", "part-0001.jsonl"),
    ("embeddings", "v2.3", "items.parquet"),
]


@pytest.mark.parametrize(("dataset", "version", "name"), CASES)
def test_a_hash_mismatch_keeps_nothing_from_the_version(graph, db, decls, dataset, version, name):
    srv, drive = graph
    path = f"datasets/{dataset}/{version}/{name}"
    node = srv.drive.node_at(f"{ROOT}/{path}")
    node.reported = {"quickXorHash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    ds = decls.by_name()[dataset]
    with pytest.raises(VersionFailed) as err:
        stage(db, drive, decls, ds, version)
    assert err.value.failures[0][0] == path
    assert "quickXorHash" in str(err.value) and "Graph reported" in str(err.value)
    with db.connect() as conn:
        assert not partition_exists(conn, RAW_SCHEMA, partition_name(dataset, version))
        status, error = conn.execute(
            "SELECT status, error FROM onedrive_ingest WHERE path = %s", (path,)
        ).fetchone()
    assert status == "quarantined" and path in error


@pytest.mark.parametrize(("dataset", "version", "name"), CASES)
def test_graph_files_stage_like_local_ones(graph, db, decls, drive, dataset, version, name):
    """The same version staged from Graph and from the local folder gives the same rows."""
    srv, gdrive = graph
    ds = decls.by_name()[dataset]
    from_graph = stage(db, gdrive, decls, ds, version)
    assert {f.path for f in from_graph.loads} >= {f"datasets/{dataset}/{version}/{name}"}
    local_rows = sum(f.rows for f in stage(db, drive, decls, ds, version).loads)
    assert from_graph.rows == local_rows > 0
    graph_sha = {f.path: f.sha256 for f in from_graph.loads}
    assert len(graph_sha) == len(from_graph.loads)
    assert srv.requests("GET", "/download/")
