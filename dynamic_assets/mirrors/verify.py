"""Prove that a mirrored object is the attested version: `verify DATASET VERSION --mirror NAME`.

Steps, each named when it fails:
1. `recorded`: the registry records the version's fingerprint and the mirror's location.
2. `download`: the object at the recorded key can be fetched.
3. `sha256`: the downloaded bytes have the recorded SHA-256 and size.
4. `parquet`: the bytes are a Parquet file of the version's declared columns.
5. `content digest`: the rows read from the Parquet file, loaded into a throw-away table in
   Postgres (a transaction that is rolled back), give the version's content digest and row
   count under fingerprint spec v1: the same canonical row text the fingerprint was computed with
   (`copies.load.check_copy`).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
import pyarrow.parquet as pq

from dynamic_assets.copies.export import ROW_ORIGIN
from dynamic_assets.copies.load import CopyError, check_copy
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Column, Declarations
from dynamic_assets.mirrors import s3
from dynamic_assets.mirrors.publish import recorded_location, s3_platform
from dynamic_assets.provenance.fingerprint import FingerprintError


@dataclass
class MirrorCheck:
    platform: str
    dataset: str
    version: str
    url: str | None = None
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(ok for _, ok, _ in self.steps)

    @property
    def failed_step(self) -> str | None:
        return next((name for name, ok, _ in self.steps if not ok), None)

    def add(self, step: str, ok: bool, detail: str) -> bool:
        self.steps.append((step, ok, detail))
        return ok


def verify_mirror(
    db: Database,
    decls: Declarations,
    dataset: str,
    version: str,
    name: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> MirrorCheck:
    """Check the mirror `name` of `dataset` `version` against the registry's fingerprint record."""
    platform = s3_platform(decls, name)
    check = MirrorCheck(name, dataset, version)
    with db.connect() as conn:
        row = conn.execute(
            "SELECT fingerprint, fingerprint_record, schema FROM public.datasets "
            "WHERE name = %s AND version = %s AND status = 'curated'",
            (dataset, version),
        ).fetchone()
        where = recorded_location(conn, dataset, version, name)
    if row is None or not row[0] or not row[1]:
        check.add("recorded", False, f"{dataset} {version} is not curated with a fingerprint")
        return check
    fingerprint, record, schema = row
    if where is None:
        check.add("recorded", False, f"no location of {dataset} {version} recorded for {name}")
        return check
    if where.get("fingerprint") != fingerprint:
        check.add(
            "recorded",
            False,
            f"the mirror holds fingerprint {str(where.get('fingerprint'))[:12]}, the version is "
            f"{fingerprint[:12]}: mirror it again",
        )
        return check
    key = s3.object_key(platform, name, dataset, version, fingerprint)
    check.url = s3.location(platform, key)
    if where.get("url") != check.url:
        check.add("recorded", False, f"recorded at {where.get('url')}, expected {check.url}")
        return check
    check.add("recorded", True, check.url)
    columns = [Column.model_validate(c) for c in (schema or [])]
    with tempfile.TemporaryFile() as tmp:
        try:
            client = s3.s3_client(name, platform, environ)
            s3.download(client, platform, key, tmp)
        except FileNotFoundError:
            check.add("download", False, f"{check.url} does not exist")
            return check
        except Exception as exc:
            check.add("download", False, f"{check.url}: {s3.refusal(exc)}")
            return check
        size = tmp.tell()
        check.add("download", True, f"{size} bytes")
        tmp.seek(0)
        got = hashlib.file_digest(tmp, "sha256").hexdigest()
        want = (where.get("sha256"), where.get("size_bytes"))
        if (got, size) != want:
            check.add(
                "sha256",
                False,
                f"the object has sha256 {got[:16]}… ({size} bytes), recorded {str(want[0])[:16]}… "
                f"({want[1]} bytes): it changed in the mirror",
            )
            return check
        check.add("sha256", True, got)
        tmp.seek(0)
        try:
            parquet = pq.ParquetFile(tmp)
            names = [c.name for c in columns]
            missing = [n for n in names if n not in parquet.schema_arrow.names]
            if missing:
                raise ValueError(f"no column(s) {', '.join(missing)}")
        except Exception as exc:
            check.add("parquet", False, f"not a Parquet file of the version: {exc}")
            return check
        check.add("parquet", True, f"{parquet.metadata.num_rows} rows")
        tmp.seek(0)
        try:
            content = check_copy(db, dataset, version, columns, record, tmp, governance=ROW_ORIGIN)
        except (CopyError, FingerprintError, psycopg.Error) as exc:
            detail = f"the object {exc}" if isinstance(exc, CopyError) else str(exc)
            check.add("content digest", False, f"cannot load the rows: {detail}")
            return check
    check.add(
        "content digest",
        content.ok,
        f"{content.rows} rows, digest {content.digest}"
        + (
            ""
            if content.ok
            else f"; attested {content.want_rows} rows, digest {content.want_digest}"
        ),
    )
    return check
