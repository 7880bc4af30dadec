"""Prove that a mirrored object is the attested version: `verify DATASET VERSION --mirror NAME`.

Steps, each named when it fails:
1. `recorded`: the registry records the version's fingerprint and the mirror's location.
2. `download`: the object at the recorded key can be fetched.
3. `sha256`: the downloaded bytes have the recorded SHA-256 and size.
4. `parquet`: the bytes are a Parquet file of the version's declared columns.
5. `content digest`: the rows read from the Parquet file, loaded into a throw-away table in
   Postgres (a transaction that is rolled back), give the version's content digest and row
   count under fingerprint spec v1: the same canonical row text the fingerprint was computed with.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq import encoders as pgpq_encoders
from pgpq import schema as pgpq_schema
from psycopg import sql

from dynamic_assets.db import Database
from dynamic_assets.db.tables import CURATED_SCHEMA, ident
from dynamic_assets.declarations.model import Column, Declarations
from dynamic_assets.mirrors import s3
from dynamic_assets.mirrors.publish import recorded_location, s3_platform
from dynamic_assets.provenance.fingerprint import FingerprintError, content_digest

# Column types of the throw-away table: what the COPY writes, then the declared type.
LOAD_TYPES = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamptz",
    "json": "jsonb",
}


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
        with db.connect() as conn:
            try:
                rows, digest = parquet_digest(conn, dataset, version, columns, parquet)
            except (FingerprintError, psycopg.Error, pa.ArrowException) as exc:
                check.add("content digest", False, f"cannot load the rows: {exc}")
                return check
    want_rows, want_digest = record["rows"]["count"], record["rows"]["content_digest"]
    check.add(
        "content digest",
        (rows, digest) == (want_rows, want_digest),
        f"{rows} rows, digest {digest}"
        + (
            ""
            if (rows, digest) == (want_rows, want_digest)
            else f"; attested {want_rows} rows, digest {want_digest}"
        ),  # fmt: skip
    )
    return check


def parquet_digest(
    conn: psycopg.Connection,
    dataset: str,
    version: str,
    columns: list[Column],
    parquet: pq.ParquetFile,
) -> tuple[int, str]:
    """Row count and content digest of the Parquet rows: loaded by binary COPY into a table in
    `ai_curated` that only this transaction sees and that is rolled back afterwards."""
    table = f"_mirror_check_{os.getpid()}"
    target = ident(CURATED_SCHEMA, table)
    names = [c.name for c in columns]
    conn.rollback()
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE TABLE {} (dataset_version text, {})").format(
                    target,
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(
                            sql.Identifier(c.name),
                            sql.SQL("real[]" if c.vector_dim else LOAD_TYPES[c.type]),
                        )
                        for c in columns
                    ),
                )
            )
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
                target, sql.SQL(", ").join(sql.Identifier(n) for n in names)
            )
            schema = parquet.schema_arrow
            arrow = pa.schema([schema.field(n) for n in names])
            builders = {f.name: ArrowToPostgresBinaryEncoder.infer_encoder(f) for f in arrow}
            for c in columns:
                if c.type == "json":
                    builders[c.name] = pgpq_encoders.StringEncoderBuilder.new_with_output(
                        arrow.field(c.name), pgpq_schema.Jsonb()
                    )
            enc = ArrowToPostgresBinaryEncoder.new_with_encoders(arrow, builders)
            with cur.copy(copy_sql) as copy:
                copy.write(enc.write_header())
                for batch in parquet.iter_batches(columns=names):
                    copy.write(enc.write_batch(batch))
                copy.write(enc.finish())
            for c in columns:
                if c.vector_dim:
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                            target,
                            sql.Identifier(c.name),
                            sql.SQL(c.pg_type),
                            sql.Identifier(c.name),
                            sql.SQL(c.pg_type),
                        )
                    )
            cur.execute(sql.SQL("UPDATE {} SET dataset_version = %s").format(target), (version,))
        result = content_digest(
            conn, dataset, version, [{"name": c.name, "type": c.type} for c in columns], table=table
        )
        return result.rows, result.digest
    finally:
        conn.rollback()
