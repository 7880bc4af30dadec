"""What the platform wrote or showed, gathered as named byte strings, and the search of it for
values that must never be there (secrets, values of datasets declared sensitive).

A haystack's name says where its bytes come from (`event log of run 1a2b3c4d`, `compute log
storage/<run>/compute_logs/x.err`, `table public.etl_runs`, `stderr`, ...), so that a hit names
the place that leaked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql


def find(haystacks: Mapping[str, bytes], needles: Mapping[str, Iterable[str]]) -> list[str]:
    """`<needle name> in <haystack name>` for each haystack holding any form of a needle."""
    hits = []
    for where, data in haystacks.items():
        for name, forms in needles.items():
            for form in forms:
                if form.encode() in data:
                    hits.append(f"{name} in {where}")
                    break
    return hits


def dagster_haystacks(instance: dg.DagsterInstance) -> dict[str, bytes]:
    """The instance's record of every run (its event log, serialized: messages, errors, asset
    and check metadata; the run's config and tags) and every file of its storage, compute logs
    named as such."""
    found: dict[str, bytes] = {}
    for record in instance.get_run_records():
        run_id = record.dagster_run.run_id
        found[f"event log of run {run_id[:8]}"] = "\n".join(
            dg.serialize_value(e) for e in instance.all_logs(run_id)
        ).encode()
        found[f"run {run_id[:8]} (config, tags)"] = dg.serialize_value(record.dagster_run).encode()
    if instance.root_directory:
        root = Path(instance.root_directory)
        for path in root.rglob("*"):
            if path.is_file():
                rel = path.relative_to(root)
                kind = "compute log" if "compute_logs" in rel.parts else "instance file"
                found[f"{kind} {rel}"] = path.read_bytes()
    return found


def file_haystacks(root: Path, label: str = "file") -> dict[str, bytes]:
    """Every file under `root`."""
    return {
        f"{label} {path.relative_to(root)}": path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def table_haystacks(url: str, schemas: Iterable[str] = ("public",)) -> dict[str, bytes]:
    """Every row of every table in `schemas`, as JSON text, one haystack per table."""
    found: dict[str, bytes] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname = ANY(%s) AND NOT c.relispartition",
            (list(schemas),),
        ).fetchall()
        for schema, table in tables:
            rows = conn.execute(
                sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(sql.Identifier(schema, table))
            ).fetchall()
            found[f"table {schema}.{table}"] = "\n".join(r[0] for r in rows).encode()
    return found
