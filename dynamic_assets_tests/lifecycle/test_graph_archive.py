"""The archive tier on OneDrive: the Parquet file goes up through a Graph upload session, is
read back through Graph downloads, and is deleted through Graph when a policy deletes its version."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dynamic_assets.declarations.storage import Lifecycle
from dynamic_assets.lifecycle.archive import archive_version
from dynamic_assets.lifecycle.run import run_pass
from dynamic_assets.provenance.signing import SigningKey
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


OLD = "2024-06-01"


@pytest.fixture
def key():
    return SigningKey(Ed25519PrivateKey.generate(), "test")


def _registry(db, version):
    with db.connect() as conn:
        return conn.execute(
            "SELECT status, deletion_policy, platform_locations FROM public.datasets "
            "WHERE name = 'market' AND version = %s",
            (version,),
        ).fetchone()


def _due_for_deletion(db, decls):
    decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, delete_after_days=30)
    with db.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '40 days' "
            "WHERE name = 'market' AND version = %s",
            (OLD,),
        )


def test_deletion_by_policy_removes_the_archive_file_from_onedrive(curated, graph, tier_decls, key):
    srv, gdrive = graph
    archived = archive_version(curated, gdrive, "archive", "market", OLD)
    assert archived is not None
    stored = f"{ROOT}/{archived.path}"
    assert srv.drive.node_at(stored) is not None
    _due_for_deletion(curated, tier_decls)

    done = run_pass(curated, gdrive, tier_decls, key=key)
    assert done.failed == []
    assert [(d.version, d.tiers) for d in done.deletions.deleted] == [(OLD, ["archive"])]
    assert srv.drive.node_at(stored) is None
    assert srv.drive.node_at(f"{ROOT}/archive/market") is not None  # only the file went
    assert [r["status"] for r in srv.requests("DELETE")] == [204]
    status, policy, locations = _registry(curated, OLD)
    assert (status, policy) == ("deleted", "delete_after_days") and "archive" not in locations

    again = run_pass(curated, gdrive, tier_decls, key=key)
    assert again.failed == [] and again.deletions.deleted == []
    assert len(srv.requests("DELETE")) == 1
    assert _registry(curated, OLD)[:2] == ("deleted", "delete_after_days")


def test_deletion_of_an_archive_file_already_gone_from_onedrive_finishes(
    curated, graph, tier_decls, key
):
    srv, gdrive = graph
    archived = archive_version(curated, gdrive, "archive", "market", OLD)
    assert archived is not None
    srv.drive.delete(f"{ROOT}/{archived.path}")  # removed by hand in OneDrive
    _due_for_deletion(curated, tier_decls)

    done = run_pass(curated, gdrive, tier_decls, key=key)
    assert done.failed == []
    assert [(d.version, d.tiers) for d in done.deletions.deleted] == [(OLD, ["archive"])]
    status, policy, locations = _registry(curated, OLD)
    assert (status, policy) == ("deleted", "delete_after_days") and "archive" not in locations


def test_graph_drive_refuses_to_delete_a_folder(curated, graph):
    srv, gdrive = graph
    archived = archive_version(curated, gdrive, "archive", "market", OLD)
    assert archived is not None
    with pytest.raises(IsADirectoryError, match="archive/market"):
        gdrive.delete("archive/market")
    assert srv.drive.node_at(f"{ROOT}/{archived.path}") is not None
    assert srv.requests("DELETE") == []
