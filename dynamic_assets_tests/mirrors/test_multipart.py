"""A larger version goes up in parts and comes back byte for byte; an upload interrupted
mid-way is resumed from the parts the store holds."""

from __future__ import annotations

import hashlib
import io

import pyarrow.parquet as pq
import pytest

from dynamic_assets.declarations.model import Declarations
from dynamic_assets.demo.seed import seed_drive
from dynamic_assets.drive import LocalDrive
from dynamic_assets.mirrors.publish import mirror_version
from dynamic_assets.mirrors.s3 import MirrorError
from dynamic_assets.mirrors.verify import verify_mirror
from dynamic_assets_tests.mirrors.conftest import BUCKET
from dynamic_assets_tests.support.staging import curate_and_fingerprint

PART = 5 * 1024 * 1024  # the smallest part S3 takes


def test_a_larger_version_is_uploaded_in_parts(tmp_path, db, mirror_decls, s3):
    only = Declarations(
        datasets=[mirror_decls.dataset("embeddings")], platforms=mirror_decls.platforms
    )
    root = tmp_path / "big"
    seeded = seed_drive(root, only, scale=250)
    version = seeded[0].version
    curate_and_fingerprint(db, LocalDrive(root), only, "embeddings", version)
    done = mirror_version(
        db, only, "embeddings", version, "spaces", multipart_threshold=PART, multipart_chunk=PART
    )
    assert done.placed.size_bytes > PART, done.placed.size_bytes
    head = s3.client().head_object(Bucket=BUCKET, Key=done.placed.key)
    parts = -(-done.placed.size_bytes // PART)
    assert head["ETag"].strip('"').endswith(f"-{parts}") and parts >= 2  # a multipart ETag
    assert sum(1 for p in s3.log.uploads() if p.endswith(".parquet")) >= parts
    body = s3.client().get_object(Bucket=BUCKET, Key=done.placed.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == done.placed.sha256
    check = verify_mirror(db, only, "embeddings", version, "spaces")
    assert check.ok, check.steps


def test_an_interrupted_multipart_upload_is_resumed_from_its_stored_parts(
    tmp_path, db, mirror_decls, s3
):
    only = Declarations(
        datasets=[mirror_decls.dataset("embeddings")], platforms=mirror_decls.platforms
    )
    root = tmp_path / "big"
    version = seed_drive(root, only, scale=250)[0].version
    curate_and_fingerprint(db, LocalDrive(root), only, "embeddings", version)
    client = s3.client()

    s3.log.fail_part = 2  # the connection breaks while part 2 goes up
    with pytest.raises(MirrorError, match=rf"mirror spaces: embeddings {version} "):
        mirror_version(
            db,
            only,
            "embeddings",
            version,
            "spaces",
            multipart_threshold=PART,
            multipart_chunk=PART,
        )
    [left] = client.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    stored = client.list_parts(Bucket=BUCKET, Key=left["Key"], UploadId=left["UploadId"])["Parts"]
    assert [p["PartNumber"] for p in stored] == [1]

    s3.log.requests.clear()
    done = mirror_version(
        db, only, "embeddings", version, "spaces", multipart_threshold=PART, multipart_chunk=PART
    )
    parts = -(-done.placed.size_bytes // PART)
    sent = sorted(
        int(q.split("partNumber=")[1].split("&")[0])
        for m, _, q in s3.log.requests
        if m == "PUT" and "partNumber=" in q
    )
    assert parts >= 2 and sent == list(range(2, parts + 1))  # part 1 was not sent again
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    body = client.get_object(Bucket=BUCKET, Key=done.placed.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == done.placed.sha256
    assert pq.read_table(io.BytesIO(body)).num_rows == done.rows
    assert verify_mirror(db, only, "embeddings", version, "spaces").ok
