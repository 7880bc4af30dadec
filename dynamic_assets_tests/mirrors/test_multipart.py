"""A larger version goes up in parts and comes back byte for byte."""

from __future__ import annotations

import hashlib

from dynamic_assets.declarations.model import Declarations
from dynamic_assets.demo.seed import seed_drive
from dynamic_assets.drive import LocalDrive
from dynamic_assets.mirrors.publish import mirror_version
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
