"""The lineage of a curated dataset version, from source files to the models trained on it.

    source files (drive item id, path, eTag, SHA-256, size, modified time and by whom)
      -> staging rows per file (ai_raw) and the step outcomes (etl_runs: stage, curate, checks)
      -> curated rows per file (ai_curated)
      -> fingerprint (datasets)
      -> attestation (ledger entry, Merkle position, TON transaction, proof file)
      -> models trained on it (models: by registry id or by the fingerprint in their metadata)

Read-only: every value comes from Postgres as it stands.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from dynamic_assets.datasets.registry import not_registered
from dynamic_assets.db import Database
from dynamic_assets.db.tables import CURATED_SCHEMA, RAW_SCHEMA, ident, table_columns


class LineageNotFound(LookupError):
    """The dataset version is not in the registry."""


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _rows_by_file(conn: psycopg.Connection, schema: str, dataset: str, version: str, col: str):
    if not table_columns(conn, schema, dataset):
        return None
    rows = conn.execute(
        sql.SQL("SELECT {c}, count(*) FROM {t} WHERE dataset_version = %s GROUP BY 1").format(
            c=sql.Identifier(col), t=ident(schema, dataset)
        ),
        (version,),
    ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def lineage(db: Database, dataset: str, version: str) -> dict[str, Any]:
    """The whole chain for one dataset version, as plain JSON-ready data."""
    with db.connect() as conn:
        reg = conn.execute(
            """SELECT id, status, row_count, file_count, checksum, size_bytes, fingerprint,
                      content_digest, fingerprint_record, fingerprinted_at, curated_at,
                      schema_version, sensitivity
                 FROM public.datasets WHERE name = %s AND version = %s""",
            (dataset, version),
        ).fetchone()
        if reg is None:
            raise LineageNotFound(not_registered(conn, dataset, version, "the registry"))
        (ds_id, status, row_count, file_count, checksum, size, fp, digest, record, fp_at,
         curated_at, schema_version, sensitivity) = reg  # fmt: skip

        files = conn.execute(
            """SELECT id, drive_item_id, path, etag, ctag, sha256, quick_xor_hash, size_bytes,
                      modified_at, modified_by, status, rows_loaded, first_seen_at
                 FROM public.onedrive_ingest
                WHERE dataset = %s AND version = %s AND status = 'curated' ORDER BY path""",
            (dataset, version),
        ).fetchall()
        staged = _rows_by_file(conn, RAW_SCHEMA, dataset, version, "_file_id") or {}
        curated = _rows_by_file(conn, CURATED_SCHEMA, dataset, version, "_source_file_id") or {}
        source = []
        for f in files:
            source.append(
                {
                    "id": f[0],
                    "drive_item_id": f[1],
                    "path": f[2],
                    "etag": f[3],
                    "ctag": f[4],
                    "sha256": f[5],
                    "quick_xor_hash": f[6],
                    "size_bytes": f[7],
                    "modified_at": _iso(f[8]),
                    "modified_by": f[9],
                    "status": f[10],
                    "rows_loaded": f[11],
                    "first_seen_at": _iso(f[12]),
                    "staging_rows": staged.get(f[0], 0),
                    "curated_rows": curated.get(f[0], 0),
                }
            )
        runs = conn.execute(
            """SELECT run_id, step, status, files, rows_loaded, rows_rejected, bytes, error,
                      checks, started_at, duration_s
                 FROM public.etl_runs WHERE dataset = %s AND version = %s ORDER BY started_at""",
            (dataset, version),
        ).fetchall()
        steps = [
            {
                "run_id": r[0],
                "step": r[1],
                "status": r[2],
                "files": r[3],
                "rows_loaded": r[4],
                "rows_rejected": r[5],
                "bytes": r[6],
                "error": r[7],
                "checks": r[8],
                "started_at": _iso(r[9]),
                "seconds": r[10],
            }
            for r in runs
        ]
        proof = conn.execute(
            """SELECT p.ledger_seq, p.leaf_index, p.tree_size, p.drive_path, a.entry_hash,
                      a.prev_hash, a.merkle_root, a.created_at, a.public_key, a.anchor
                 FROM public.dataset_proofs p
                 LEFT JOIN public.attestations a ON a.seq = p.ledger_seq
                WHERE p.dataset = %s AND p.version = %s AND p.fingerprint = %s""",
            (dataset, version, fp),
        ).fetchone()
        attestation = None
        if proof is not None:
            anchor = proof[9]
            attestation = {
                "ledger_seq": proof[0],
                "leaf_index": proof[1],
                "tree_size": proof[2],
                "proof_file": proof[3],
                "entry_hash": proof[4],
                "prev_hash": proof[5],
                "merkle_root": proof[6],
                "created_at": _iso(proof[7]),
                "public_key": proof[8],
                "ton": None
                if not anchor
                else {
                    "network": anchor.get("network"),
                    "wallet": anchor.get("wallet"),
                    "tx_hash": anchor.get("tx_hash"),
                    "tx_lt": anchor.get("tx_lt"),
                    "utime": anchor.get("utime"),
                },
            }
        models = conn.execute(
            """SELECT name, version, framework, created_at, metadata->>'data_fingerprint'
                 FROM public.models
                WHERE dataset_id = %s OR (%s::text IS NOT NULL AND metadata->>'data_fingerprint' = %s)
                ORDER BY created_at""",
            (ds_id, fp, fp),
        ).fetchall()
    return {
        "dataset": dataset,
        "version": version,
        "status": status,
        "source_files": source,
        "staging": {
            "table": f"{RAW_SCHEMA}.{dataset}",
            "rows": sum(staged.values()),
        },
        "steps": steps,
        "curated": {
            "table": f"{CURATED_SCHEMA}.{dataset}",
            "rows": sum(curated.values()),
            "registered_rows": row_count,
            "files": file_count,
            "schema_version": schema_version,
            "sensitivity": sensitivity,
            "curated_at": _iso(curated_at),
        },
        "fingerprint": None
        if not fp
        else {
            "fingerprint": fp,
            "spec": (record or {}).get("spec"),
            "content_digest": digest,
            "checksum": checksum,
            "size_bytes": size,
            "rows": ((record or {}).get("rows") or {}).get("count"),
            "fingerprinted_at": _iso(fp_at),
        },
        "attestation": attestation,
        "models": [
            {
                "name": m[0],
                "version": m[1],
                "framework": m[2],
                "created_at": _iso(m[3]),
                "data_fingerprint": m[4],
            }
            for m in models
        ],
    }
