"""Mirrored objects in an S3-compatible store (boto3).

A version lands at `<prefix>/<dataset>/<version>/<file name>`, the file named by the project's
convention `dynamic-assets_dataset_<dataset>-<version>_<fingerprint[:12]>_<platform>.parquet`:
the same curated rows always give the same key and the same bytes. The object's SHA-256 rides in
its metadata (`x-amz-meta-sha256`), so an upload is skipped when the object already holds those
exact bytes. `<prefix>/<dataset>/latest` is a small JSON object naming the current version's
object (S3 has no symbolic links). Large files go up in parts (`put_multipart`), and an upload
an interrupted run left unfinished is resumed from its stored parts; `503 SlowDown` and other
throttling answers are retried by botocore.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from dynamic_assets.declarations.platforms import S3Platform, credential_variables

MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024
# Names the refusals give for the S3 error codes a user meets (the server's text is not
# repeated: it may quote the key id or the request).
REFUSALS = {
    "InvalidAccessKeyId": "the access key id is not known to the store",
    "SignatureDoesNotMatch": "the secret access key does not match the key id",
    "AccessDenied": "access denied for these credentials",
    "NoSuchBucket": "the bucket does not exist",
    "403": "access denied for these credentials",
    "404": "not found",
    "SlowDown": "the store kept answering 503 SlowDown after every retry",
    "503": "the store kept answering 503 after every retry",
}


class MirrorError(RuntimeError):
    """A mirror could not be written or read; the message names platform, dataset and version."""


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str

    def __repr__(self) -> str:  # never shows the secret
        return f"Credentials(key_id={self.key_id[:4]}…)"


def credentials(name: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The platform's credentials from the environment: its own variables, else AWS_'s; None when
    neither pair is set (boto3's own chain then applies)."""
    environ = os.environ if environ is None else environ
    for key_var, secret_var in credential_variables(name):
        if environ.get(key_var) and environ.get(secret_var):
            return Credentials(environ[key_var], environ[secret_var])
    return None


def s3_client(
    name: str,
    platform: S3Platform,
    environ: Mapping[str, str] | None = None,
    *,
    attempts: int = 6,
) -> Any:
    """A boto3 client of the platform; `attempts` bounds the retries of throttled or failed
    requests (fewer for a quick look such as `status`)."""
    import boto3
    from botocore.config import Config

    creds = credentials(name, environ)
    config = Config(
        retries={"max_attempts": attempts, "mode": "standard"},
        s3={"addressing_style": "path"},
        connect_timeout=10 if attempts > 1 else 3,
        read_timeout=60,
        # checksums only when the operation requires one: S3-compatible stores differ in support
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=platform.endpoint_url,
        region_name=platform.region or "us-east-1",
        aws_access_key_id=creds.key_id if creds else None,
        aws_secret_access_key=creds.secret if creds else None,
        config=config,
    )


def file_name(dataset: str, version: str, fingerprint: str, platform: str) -> str:
    return f"dynamic-assets_dataset_{dataset}-{version}_{fingerprint[:12]}_{platform}.parquet"


def object_key(platform: S3Platform, name: str, dataset: str, version: str, fp: str) -> str:
    return f"{platform.prefix}/{dataset}/{version}/{file_name(dataset, version, fp, name)}"


def latest_key(platform: S3Platform, dataset: str) -> str:
    return f"{platform.prefix}/{dataset}/latest"


def location(platform: S3Platform, key: str) -> str:
    return f"s3://{platform.bucket}/{key}"


def refusal(exc: BaseException) -> str:
    """What went wrong, in words that hold no credential and no server text."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return REFUSALS.get(code) or REFUSALS.get(status) or f"the store answered {code or status}"
    if isinstance(exc, NoCredentialsError):
        return "no credentials: set <NAME>_ACCESS_KEY_ID/<NAME>_SECRET_ACCESS_KEY or AWS_'s"
    if isinstance(exc, EndpointConnectionError):
        return "the endpoint could not be reached"
    return type(exc).__name__


@dataclass(frozen=True)
class Placed:
    """Where a version's object is, and whether this call wrote it."""

    url: str
    key: str
    sha256: str
    size_bytes: int
    uploaded: bool


def head(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return dict(client.head_object(Bucket=bucket, Key=key))
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def put_file(
    client: Any,
    platform: S3Platform,
    key: str,
    body: IO[bytes],
    sha256: str,
    size: int,
    *,
    content_type: str,
    threshold: int = MULTIPART_THRESHOLD,
    chunk: int = MULTIPART_CHUNK,
) -> bool:
    """Upload `body` to `key` unless the object already holds these exact bytes (same SHA-256
    in its metadata and same size); True when it uploaded."""
    from boto3.s3.transfer import TransferConfig

    found = head(client, platform.bucket, key)
    if (
        found is not None
        and found.get("Metadata", {}).get("sha256") == sha256
        and int(found.get("ContentLength", -1)) == size
    ):
        return False
    if size >= threshold:
        put_multipart(client, platform, key, body, sha256, content_type=content_type, chunk=chunk)
        return True
    client.upload_fileobj(
        body,
        platform.bucket,
        key,
        ExtraArgs={"Metadata": {"sha256": sha256}, "ContentType": content_type},
        Config=TransferConfig(
            multipart_threshold=threshold, multipart_chunksize=chunk, use_threads=False
        ),
    )
    return True


def _stored_parts(client: Any, bucket: str, key: str, upload_id: str) -> dict[int, tuple[str, int]]:
    parts: dict[int, tuple[str, int]] = {}
    for page in client.get_paginator("list_parts").paginate(
        Bucket=bucket, Key=key, UploadId=upload_id
    ):
        for p in page.get("Parts", []):
            parts[int(p["PartNumber"])] = (str(p["ETag"]), int(p["Size"]))
    return parts


def put_multipart(
    client: Any,
    platform: S3Platform,
    key: str,
    body: IO[bytes],
    sha256: str,
    *,
    content_type: str,
    chunk: int = MULTIPART_CHUNK,
) -> int:
    """Upload `body` to `key` in parts of `chunk` bytes, resuming an upload of the key left
    unfinished by an interrupted run: its stored parts whose MD5 ETag and size match the same
    part of `body` are kept, the others sent. (The export is deterministic, so an interrupted
    upload of a key holds a prefix of the same bytes; an upload holding other bytes is aborted
    and started again.) A failure leaves the upload in the store for the next run to resume.
    Returns the number of parts sent."""
    bucket = platform.bucket
    listed = client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    unfinished = sorted(
        (u for u in listed if u["Key"] == key), key=lambda u: u["Initiated"], reverse=True
    )
    upload_id, stored = None, {}
    for u in unfinished:
        if upload_id is None:
            upload_id, stored = u["UploadId"], _stored_parts(client, bucket, key, u["UploadId"])
        else:  # an older leftover of the same key: nothing resumes it
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=u["UploadId"])
    parts: list[dict[str, Any]] = []
    sent, number = 0, 0
    while data := body.read(chunk):
        number += 1
        etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
        if upload_id is not None and stored.get(number) not in (None, (etag, len(data))):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            upload_id, stored = None, {}
            body.seek(0)
            parts, sent, number = [], 0, 0
            continue
        if upload_id is None:
            upload_id = client.create_multipart_upload(
                Bucket=bucket, Key=key, Metadata={"sha256": sha256}, ContentType=content_type
            )["UploadId"]
        if stored.get(number) != (etag, len(data)):
            etag = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )["ETag"]
            sent += 1
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    return sent


def pointer_bytes(dataset: str, version: str, url: str, sha256: str, size: int) -> bytes:
    """The `latest` pointer: canonical JSON naming the current version's object."""
    record = {
        "dataset": dataset,
        "version": version,
        "object": url,
        "sha256": sha256,
        "size_bytes": size,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def put_bytes(client: Any, platform: S3Platform, key: str, data: bytes, content_type: str) -> bool:
    import io

    digest = hashlib.sha256(data).hexdigest()
    return put_file(
        client, platform, key, io.BytesIO(data), digest, len(data), content_type=content_type
    )


def download(client: Any, platform: S3Platform, key: str, sink: IO[bytes]) -> dict[str, Any]:
    """Fetch the object into `sink`; its HEAD answer (metadata, size)."""
    found = head(client, platform.bucket, key)
    if found is None:
        raise FileNotFoundError(location(platform, key))
    client.download_fileobj(platform.bucket, key, sink)
    return found
