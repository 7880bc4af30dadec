"""A deleted version's dynamic partition goes only once no tier holds a copy of it."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dynamic_assets.declarations.storage import Lifecycle
from dynamic_assets.defs.lifecycle.assets import remove_deleted_partitions
from dynamic_assets.lifecycle.archive import archive_version
from dynamic_assets.lifecycle.deletion import Due, record_deletion
from dynamic_assets.lifecycle.run import run_pass
from dynamic_assets.provenance.signing import SigningKey
from dynamic_assets_tests.support.tiers import curated, tier_decls  # noqa: F401


def test_partition_removed_only_when_no_tier_holds_the_version(
    curated,  # noqa: F811
    tier_decls,  # noqa: F811
    drive,
    drive_root,
    instance,
):
    key = SigningKey(Ed25519PrivateKey.generate(), "test")
    instance.add_dynamic_partitions("market_versions", ["2024-06-01", "2024-07-01"])
    archived = archive_version(curated, drive, "archive", "market", "2024-06-01")
    with curated.connect() as conn, conn.transaction():
        fp = conn.execute(
            "SELECT fingerprint FROM public.datasets WHERE name = 'market' AND version = "
            "'2024-06-01'"
        ).fetchone()[0]
        # Recorded deleted, its archive file not removed yet (a pass killed in between).
        record_deletion(conn, Due("market", "2024-06-01", fp, "delete_after_days", "t", []), key)
    assert remove_deleted_partitions(instance, curated) == []
    assert instance.has_dynamic_partition("market_versions", "2024-06-01")

    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1)
    run_pass(curated, drive, tier_decls, key=key)  # finishes the deletion
    assert not (drive_root / archived.path).exists()
    assert remove_deleted_partitions(instance, curated) == ["market 2024-06-01"]
    assert instance.get_dynamic_partitions("market_versions") == ["2024-07-01"]
