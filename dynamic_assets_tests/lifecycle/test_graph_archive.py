"""The archive tier on OneDrive: the Parquet file goes up through a Graph upload session and is
read back through Graph downloads."""

from __future__ import annotations

import pytest

from dynamic_assets.lifecycle.archive import archive_version
from dynamic_assets.read.curated import read_curated
from dynamic_assets_tests.support.graph_server import serve
from dynamic_assets_tests.support.onedrive import ROOT, graph_drive


@pytest.fixture
def graph(tmp_path, monkeypatch):
    with serve(tmp_path, monkeypatch) as srv:
        yield srv, graph_drive(srv)


def test_archive_uploads_through_a_session_and_reads_back_through_graph(curated, graph):
    srv, gdrive = graph
    before = read_curated("corpus", version="v1.0", as_arrow=True, database=curated)
    done = archive_version(curated, gdrive, "archive", "corpus", "v1.0")
    assert done is not None
    assert len(srv.requests("POST", "createUploadSession")) == 1
    stored = srv.drive.node_at(f"{ROOT}/{done.path}").content
    assert len(stored) == done.size_bytes
    after = read_curated("corpus", version="v1.0", as_arrow=True, database=curated, drive=gdrive)
    key = [("doc_id", "ascending")]
    assert after.sort_by(key).equals(before.sort_by(key))
    assert srv.requests("GET", "/download/")
