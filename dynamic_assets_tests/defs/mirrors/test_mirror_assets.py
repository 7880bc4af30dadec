"""The mirror asset materialized by Dagster for one version, against moto's S3 on 127.0.0.1."""

from __future__ import annotations

import dagster as dg
import pytest

from dynamic_assets.defs.datasets.partitions import partitions_name
from dynamic_assets.defs.mirrors.assets import build_mirror_asset, mirror_key, mirrors_defs
from dynamic_assets.defs.provenance.resources import AttestationResource
from dynamic_assets.defs.resources import PostgresResource
from dynamic_assets_tests.mirrors.conftest import BUCKET
from dynamic_assets_tests.support.staging import curate_and_fingerprint

V = "2024-06-01"


def test_the_mirror_asset_uploads_and_reports_where(
    tmp_path, db, db_url, drive, decls, mirror_decls, s3, instance
):
    fp = curate_and_fingerprint(db, drive, decls, "market", V)
    asset = build_mirror_asset(mirror_decls.dataset("market"), mirror_decls, "spaces")
    keys = [a.key for a in mirrors_defs(mirror_decls).assets or []]  # type: ignore[union-attr]
    assert mirror_key("market", "spaces") in keys and len(keys) == len(mirror_decls.datasets)
    assert [k.to_user_string() for k in asset.dependency_keys] == ["provenance/market/fingerprint"]
    instance.add_dynamic_partitions(partitions_name("market"), [V])
    result = dg.materialize(
        [asset],
        partition_key=V,
        instance=instance,
        resources={
            "postgres": PostgresResource(url=db_url),
            "attestation": AttestationResource(key_home=str(tmp_path)),
        },
    )
    assert result.success
    meta = result.asset_materializations_for_node(asset.op.name)[0].metadata
    key = f"datasets/market/{V}/dynamic-assets_dataset_market-{V}_{fp[:12]}_spaces.parquet"
    assert meta["location"].value == f"s3://{BUCKET}/{key}"
    assert meta["dagster/row_count"].value == 560 and meta["uploaded"].value is True
    assert (
        s3.client().head_object(Bucket=BUCKET, Key=key)["Metadata"]["sha256"]
        == meta["sha256"].value
    )


def test_a_failing_store_fails_the_asset_with_the_named_version(
    tmp_path, db, db_url, drive, decls, mirror_decls, s3, instance
):
    curate_and_fingerprint(db, drive, decls, "market", V)
    s3.client().delete_bucket(Bucket=BUCKET)
    asset = build_mirror_asset(mirror_decls.dataset("market"), mirror_decls, "spaces")
    instance.add_dynamic_partitions(partitions_name("market"), [V])
    with pytest.raises(
        dg.Failure, match="mirror spaces: market 2024-06-01 .*bucket does not exist"
    ):
        dg.materialize(
            [asset],
            partition_key=V,
            instance=instance,
            resources={
                "postgres": PostgresResource(url=db_url),
                "attestation": AttestationResource(key_home=str(tmp_path)),
            },
        )
