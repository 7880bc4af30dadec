"""Mirroring curated versions to an S3-compatible store (moto's server on 127.0.0.1), read back
with a separate boto3 client and pyarrow."""

from __future__ import annotations

import hashlib
import io
import json

import pyarrow.parquet as pq
import pytest

from dynamic_assets.mirrors import s3 as s3m
from dynamic_assets.mirrors.publish import mirror_version
from dynamic_assets_tests.mirrors.conftest import BUCKET
from dynamic_assets_tests.support.staging import curate_and_fingerprint

V = "2024-06-01"


def _objects(client) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def test_a_version_is_mirrored_once_and_rebuilt_byte_identical(db, drive, decls, mirror_decls, s3):
    fp = curate_and_fingerprint(db, drive, decls, "market", V)
    first = mirror_version(db, mirror_decls, "market", V, "spaces")
    key = f"datasets/market/{V}/dynamic-assets_dataset_market-{V}_{fp[:12]}_spaces.parquet"
    client = s3.client()
    objects = _objects(client)
    assert sorted(objects) == sorted([key, "datasets/market/latest"])
    data = objects[key]
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 560 and table.column_names[:3] == ["date", "symbol", "exchange"]
    order = list(
        zip(table["_source_file_id"].to_pylist(), table["_source_row"].to_pylist(), strict=True)
    )
    assert order == sorted(order)
    assert first.placed.uploaded and first.placed.sha256 == hashlib.sha256(data).hexdigest()
    assert json.loads(objects["datasets/market/latest"]) == {
        "dataset": "market",
        "version": V,
        "object": f"s3://{BUCKET}/{key}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
    }
    with db.connect() as conn:
        where = conn.execute(
            "SELECT platform_locations -> 'spaces' FROM datasets WHERE name = 'market' AND version = %s",
            (V,),
        ).fetchone()[0]
    assert where == {
        "url": f"s3://{BUCKET}/{key}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "fingerprint": fp,
    }
    etag = client.head_object(Bucket=BUCKET, Key=key)["ETag"]

    # Again: the store already holds these bytes, nothing is uploaded.
    s3.log.requests.clear()
    again = mirror_version(db, mirror_decls, "market", V, "spaces")
    assert not again.placed.uploaded and not again.latest_moved
    assert s3.log.uploads() == []
    assert client.head_object(Bucket=BUCKET, Key=key)["ETag"] == etag

    # The mirror's objects deleted: running again puts back the very same bytes.
    for k in objects:
        client.delete_object(Bucket=BUCKET, Key=k)
    rebuilt = mirror_version(db, mirror_decls, "market", V, "spaces")
    assert rebuilt.placed.uploaded
    assert _objects(client) == objects


def test_a_wrong_key_is_refused_naming_platform_dataset_and_version(
    db, drive, decls, mirror_decls, s3, monkeypatch
):
    curate_and_fingerprint(db, drive, decls, "market", V)
    key_id, secret = s3.require_keys()
    monkeypatch.setenv("SPACES_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("SPACES_SECRET_ACCESS_KEY", "wrong-secret-do-not-print")
    with pytest.raises(s3m.MirrorError) as refused:
        mirror_version(db, mirror_decls, "market", V, "spaces")
    message = str(refused.value)
    assert "mirror spaces: market 2024-06-01" in message
    assert "access denied for these credentials" in message
    assert "wrong-secret-do-not-print" not in message and "AKIAWRONG" not in message
    with db.connect() as conn:
        where = conn.execute(
            "SELECT platform_locations ? 'spaces' FROM datasets WHERE name = 'market' AND version = %s",
            (V,),
        ).fetchone()[0]
    assert where is False

    # The right key from the environment works against the same server.
    monkeypatch.setenv("SPACES_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("SPACES_SECRET_ACCESS_KEY", secret)
    assert mirror_version(db, mirror_decls, "market", V, "spaces").placed.uploaded


def test_503_slowdown_is_retried(db, drive, decls, mirror_decls, s3):
    fp = curate_and_fingerprint(db, drive, decls, "market", V)
    s3.log.slow_down = 2
    placed = mirror_version(db, mirror_decls, "market", V, "spaces").placed
    key = (
        f"/{BUCKET}/datasets/market/{V}/dynamic-assets_dataset_market-{V}_{fp[:12]}_spaces.parquet"
    )
    assert s3.log.uploads().count(key) == 3  # two answered 503 SlowDown, the third stored
    body = s3.client().get_object(Bucket=BUCKET, Key=placed.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == placed.sha256


def test_a_missing_bucket_is_named(db, drive, decls, mirror_decls, s3):
    curate_and_fingerprint(db, drive, decls, "market", V)
    s3.client().delete_bucket(Bucket=BUCKET)
    with pytest.raises(
        s3m.MirrorError, match=r"mirror spaces: market 2024-06-01 .*bucket does not exist"
    ):
        mirror_version(db, mirror_decls, "market", V, "spaces")
