"""A curated version moved to the archive tier: streamed to Parquet in the drive, verified,
dropped from core with the registry's record; read in place and restored."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from dynamic_assets.db.tables import CURATED_SCHEMA, partition_exists, partition_name
from dynamic_assets.lifecycle.archive import ArchiveError, archive_version, restore_version
from dynamic_assets.provenance.fingerprint import compute_fingerprint
from dynamic_assets.read.curated import read_curated
from dynamic_assets_tests.support.tiers import VERSIONS

KEYS = {"market": ["date", "symbol"], "corpus": ["doc_id"], "embeddings": ["item_id"]}


def _sorted(table, dataset):
    return table.sort_by([(k, "ascending") for k in KEYS[dataset]])


def _registry(db, dataset, version):
    with db.connect() as conn:
        return conn.execute(
            "SELECT tier, platform_locations, fingerprint FROM public.datasets "
            "WHERE name = %s AND version = %s",
            (dataset, version),
        ).fetchone()


def _in_core(db, dataset, version):
    with db.connect() as conn:
        return partition_exists(conn, CURATED_SCHEMA, partition_name(dataset, version))


@pytest.mark.parametrize(("dataset", "version"), [v for v in VERSIONS if v[1] != "2024-07-01"])
def test_archived_version_reads_from_the_drive_with_same_types_and_values(
    curated, drive, drive_root, dataset, version
):
    before = read_curated(dataset, version=version, as_arrow=True, database=curated)
    frame_before = read_curated(dataset, version=version, database=curated)
    done = archive_version(curated, drive, "archive", dataset, version)

    tier, locations, fingerprint = _registry(curated, dataset, version)
    assert tier == "archive"
    assert not _in_core(curated, dataset, version)
    path = (
        f"archive/{dataset}/{version}/dynamic-assets_dataset_{dataset}-{version}_"
        f"{fingerprint[:12]}_archive.parquet"
    )
    assert done is not None and done.path == path == locations["archive"]["path"]
    assert "postgres" not in locations
    on_disk = pq.read_table(drive_root / path)  # read by pyarrow straight from the folder
    assert on_disk.num_rows == before.num_rows == done.rows

    after = read_curated(dataset, version=version, as_arrow=True, database=curated, drive=drive)
    assert after.schema == before.schema
    assert _sorted(after, dataset).equals(_sorted(before, dataset))
    frame_after = read_curated(dataset, version=version, database=curated, drive=drive)
    assert frame_after.dtypes.to_dict() == frame_before.dtypes.to_dict()
    assert len(frame_after) == len(frame_before)


def test_altered_or_missing_archive_is_refused_naming_version_and_tier(curated, drive, drive_root):
    done = archive_version(curated, drive, "archive", "market", "2024-06-01")
    file = drive_root / done.path
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match=r"market 2024-06-01 \(archive tier\).*altered or trunc"):
        read_curated("market", version="2024-06-01", database=curated, drive=drive)
    file.unlink()
    with pytest.raises(ArchiveError, match=r"market 2024-06-01 \(archive tier\).*missing"):
        read_curated("market", version="2024-06-01", database=curated, drive=drive)
    with pytest.raises(ArchiveError, match="missing"):
        restore_version(curated, drive, "market", "2024-06-01")
    assert _registry(curated, "market", "2024-06-01")[0] == "archive"


def test_copy_that_does_not_match_the_fingerprint_drops_nothing(curated, drive, drive_root):
    with curated.connect() as conn:
        conn.execute(
            "UPDATE ai_curated.market SET close = close + 1 "
            "WHERE dataset_version = '2024-06-01' AND symbol = "
            "(SELECT min(symbol) FROM ai_curated.market WHERE dataset_version = '2024-06-01')"
        )
    with pytest.raises(ArchiveError, match=r"market 2024-06-01 .*does not match.*fingerprint"):
        archive_version(curated, drive, "archive", "market", "2024-06-01")
    assert _in_core(curated, "market", "2024-06-01")
    assert _registry(curated, "market", "2024-06-01")[0] == "core"


def test_restore_brings_the_version_back_with_its_fingerprint(curated, drive, tier_decls):
    before = read_curated("corpus", version="v1.0", as_arrow=True, database=curated)
    archive_version(curated, drive, "archive", "corpus", "v1.0")
    assert restore_version(curated, drive, "corpus", "v1.0") == before.num_rows
    tier, locations, fingerprint = _registry(curated, "corpus", "v1.0")
    assert tier == "core" and locations["postgres"] == "ai_curated.corpus"
    with curated.connect() as conn:
        again = compute_fingerprint(conn, tier_decls.dataset("corpus"), "v1.0")
    assert again.fingerprint == fingerprint
    after = read_curated("corpus", version="v1.0", as_arrow=True, database=curated)
    assert _sorted(after, "corpus").equals(_sorted(before, "corpus"))


def test_sensitive_versions_are_not_archived_unencrypted(db, drive, decls):
    from dynamic_assets_tests.support.staging import curate_and_fingerprint

    curate_and_fingerprint(db, drive, decls, "embeddings", "v2.3")
    with pytest.raises(ArchiveError, match="sensitive"):
        archive_version(db, drive, "archive", "embeddings", "v2.3")
    assert _in_core(db, "embeddings", "v2.3")
