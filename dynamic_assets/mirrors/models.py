"""Model checkpoints mirrored to the declared S3 platforms, the way curated versions are.

A training run's skops weights land at `<models_prefix>/<model>/<run-id>/<file>` (`models/` by
default) on each S3 platform, under the checkpoint's own file name, with their SHA-256 in the
object's metadata; an upload is skipped when the object already holds those exact bytes, and a
large file goes up in parts (`s3.put_file`). The model's `models.deployment_locations.<platform>`
records `{"url", "sha256", "size_bytes"}`; the object is recorded once in `public.mirror_objects`
(with the model, the run id, and the dataset, version and fingerprint the run was trained on) and
as one signed ledger entry (`publish.record_object`). A failure of the store is a `MirrorError`
naming platform, model and run id; `mirror_to_platforms` goes on with the other platforms.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import IO, Any

import psycopg
from psycopg.types.json import Jsonb

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.declarations.platforms import S3Platform
from dynamic_assets.mirrors import s3
from dynamic_assets.mirrors.publish import known_object, record_object, s3_platform, store_error
from dynamic_assets.provenance.signing import SigningKey

CHECKPOINT_MEDIA_TYPE = "application/octet-stream"
SPOOL_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ModelMirrored:
    platform: str
    model: str
    run_id: str
    placed: s3.Placed


def checkpoint_key(platform: S3Platform, model: str, run_id: str, file_name: str) -> str:
    return f"{platform.models_prefix}/{model}/{run_id}/{file_name}"


@dataclass(frozen=True)
class TrainedOn:
    dataset: str
    version: str
    fingerprint: str


def trained_on(conn: psycopg.Connection, model: str, run_id: str) -> TrainedOn | None:
    """The data a registered run was trained on, from its `models` row; None without a row."""
    row = conn.execute(
        "SELECT metadata->>'dataset', metadata->>'dataset_version', "
        "metadata->>'data_fingerprint' FROM public.models WHERE name = %s AND version = %s",
        (model, run_id),
    ).fetchone()
    if row is None or not all(row):
        return None
    return TrainedOn(row[0], row[1], row[2])


def record_model_location(
    conn: psycopg.Connection, model: str, run_id: str, name: str, entry: dict[str, Any]
) -> None:
    conn.execute(
        "UPDATE public.models SET deployment_locations = "
        "coalesce(deployment_locations, '{}'::jsonb) || %s WHERE name = %s AND version = %s",
        (Jsonb({name: entry}), model, run_id),
    )


@contextmanager
def spooled(source: IO[bytes]) -> Iterator[tuple[IO[bytes], str, int]]:
    """`source` copied to a temporary file while hashed: (the file at its start, SHA-256, size)."""
    digest, size = hashlib.sha256(), 0
    with tempfile.TemporaryFile() as spool:
        while data := source.read(SPOOL_CHUNK):
            digest.update(data)
            size += len(data)
            spool.write(data)
        spool.seek(0)
        yield spool, digest.hexdigest(), size


def mirror_checkpoint(
    db: Database,
    decls: Declarations,
    model: str,
    run_id: str,
    name: str,
    weights: IO[bytes],
    *,
    file_name: str,
    environ: Mapping[str, str] | None = None,
    multipart_threshold: int = s3.MULTIPART_THRESHOLD,
    multipart_chunk: int = s3.MULTIPART_CHUNK,
    signer: SigningKey | None = None,
) -> ModelMirrored:
    """Put the registered run's weights (read from `weights`) on the S3 platform `name`, record
    where they are and sign the ledger entry of an object placed for the first time."""
    platform = s3_platform(decls, name)
    where = f"mirror {name}: model {model} run {run_id}"
    with db.connect() as conn:
        data = trained_on(conn, model, run_id)
    if data is None:
        raise s3.MirrorError(f"{where}: the run is not registered in models; nothing to mirror")
    key = checkpoint_key(platform, model, run_id, file_name)
    url = s3.location(platform, key)
    with spooled(weights) as (body, sha256, size):
        try:
            client = s3.s3_client(name, platform, environ)
            uploaded = s3.put_file(
                client,
                platform,
                key,
                body,
                sha256,
                size,
                content_type=CHECKPOINT_MEDIA_TYPE,
                threshold=multipart_threshold,
                chunk=multipart_chunk,
            )
            placed = s3.Placed(url, key, sha256, size, uploaded)
            with db.connect() as conn:
                known = known_object(conn, name, placed)
            etag = None if known else (s3.head(client, platform.bucket, key) or {}).get("ETag")
        except Exception as exc:
            if not store_error(exc):
                raise
            raise s3.MirrorError(
                f"{where} (s3://{platform.bucket}/{platform.models_prefix}): {s3.refusal(exc)}"
            ) from None
    with db.connect() as conn:
        record_model_location(
            conn, model, run_id, name, {"url": url, "sha256": sha256, "size_bytes": size}
        )
        record_object(
            conn,
            name,
            data.dataset,
            data.version,
            data.fingerprint,
            placed,
            etag,
            signer,
            model=model,
            run_id=run_id,
        )
    return ModelMirrored(name, model, run_id, placed)


def s3_platform_names(decls: Declarations) -> list[str]:
    return [n for n, p in decls.platforms.items() if isinstance(p, S3Platform)]


def mirror_to_platforms(
    db: Database,
    decls: Declarations,
    model: str,
    run_id: str,
    open_weights: Callable[[], AbstractContextManager[IO[bytes]]],
    *,
    file_name: str,
    environ: Mapping[str, str] | None = None,
    signer: SigningKey | None = None,
) -> tuple[list[ModelMirrored], list[str]]:
    """Mirror the run's weights file `file_name` to every declared S3 platform; what was placed, and one message
    per platform that failed (naming platform, model and run id): a failure stops no other
    platform."""
    done: list[ModelMirrored] = []
    failures: list[str] = []
    for name in s3_platform_names(decls):
        try:
            with open_weights() as weights:
                done.append(
                    mirror_checkpoint(
                        db,
                        decls,
                        model,
                        run_id,
                        name,
                        weights,
                        file_name=file_name,
                        environ=environ,
                        signer=signer,
                    )
                )
        except s3.MirrorError as exc:
            failures.append(str(exc))
        except OSError as exc:  # the drive could not give the weights
            failures.append(
                f"mirror {name}: model {model} run {run_id}: the checkpoint could not be read "
                f"from the drive ({type(exc).__name__})"
            )
    return done, failures
