"""Trainers' access through Supabase REST (PostgREST) with an API key: `read_curated(..., via="rest")`.

    export SUPABASE_URL=https://<project>.supabase.co
    export SUPABASE_KEY=<a key: anon, service_role, or a JWT whose role claim is dai_trainer>

    from dynamic_assets.client import read_curated
    df = read_curated("market", via="rest")

What the key may read is decided by Postgres, not here: PostgREST runs each request as the key's
role, so grants and row level security (dynamic_assets.db.access) apply. The key finds the
versions it may read in the `public.curated_versions` view (a dataset it may not read does not
appear, not even by name), with their declared columns and which one is current (`pointed`:
without a version, the pointer's version is read, else the newest), and reads rows from
`ai_curated.<dataset>` page by page (`.range()`, i.e. PostgREST's limit and offset) in a stable
order (source file, row), counting with `Prefer: count=exact`. The result has the same types as
the database path (ADBC): integer -> Int64, float -> float64, date -> datetime64[s],
timestamp -> datetime64[us, UTC], json -> Python objects, vector(N) -> float32 arrays.

On Supabase, add `ai_curated` to the API's exposed schemas (Settings -> API -> Exposed schemas).
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from dynamic_assets.db.tables import CURATED_SCHEMA
from dynamic_assets.declarations.model import Column
from dynamic_assets.declarations.names import check_dataset_name, version_sort_key
from dynamic_assets.read.frames import DatasetNotFound, to_pandas, typed_table

CATALOG_VIEW = "curated_versions"
DEFAULT_PAGE_SIZE = 1000  # Supabase's default API max rows; a smaller server cap is followed
ORDER = ("_source_file_id", "_source_row")  # unique within a version: pages never overlap
_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RestConfigError(ValueError):
    """SUPABASE_URL or the key is missing (the message never holds the key)."""


class ConcurrentChange(RuntimeError):
    """The version was replaced while its pages were read; read it again."""


def rest_client(url: str | None = None, key: str | None = None):
    """A Supabase client for `url` (else SUPABASE_URL) and `key` (else SUPABASE_KEY)."""
    from supabase import create_client

    url = url or os.environ.get("SUPABASE_URL")
    key = key or os.environ.get("SUPABASE_KEY")
    if not url or not key:
        missing = [n for n, v in (("SUPABASE_URL", url), ("SUPABASE_KEY", key)) if not v]
        raise RestConfigError(
            f"reading through Supabase REST needs {' and '.join(missing)}: the project URL and an "
            "API key whose role may read the dataset"
        )
    return create_client(url, key)


def _field(name: str) -> str:
    """A column as PostgREST's select/order grammar wants it (quoted unless plain)."""
    return name if _SIMPLE.match(name) else '"' + name.replace('"', '""') + '"'


def _catalog(client, dataset: str) -> list[dict[str, Any]]:
    resp = (
        client.table(CATALOG_VIEW)
        .select("version,schema,row_count,fingerprint,curated_at,pointed")
        .eq("name", dataset)
        .execute()
    )
    return list(resp.data or [])


def current_version(catalog: dict[str, dict[str, Any]]) -> str:
    """The version the dataset's pointer names (`promote` / `rollback`), else the newest: the
    version `read_curated` reads without one on the database path too."""
    pointed = [v for v, row in catalog.items() if row.get("pointed")]
    return pointed[0] if pointed else max(catalog, key=version_sort_key)


def _float(v: Any) -> float | None:
    if v is None:
        return None
    return float(v)  # numbers, and "NaN" / "Infinity" / "-Infinity" as Postgres writes them


def _timestamp(v: Any) -> datetime | None:
    if v is None:
        return None
    text = v.replace("Z", "+00:00") if v.endswith("Z") else v
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _vector(v: Any) -> list[float] | None:
    if v is None:
        return None
    return [float(x) for x in (json.loads(v) if isinstance(v, str) else v)]


def column_array(col: Column, values: list[Any]) -> pa.Array:
    """JSON values of one column as the Arrow array the database path (ADBC) returns."""
    if col.vector_dim:
        return pa.array([_vector(v) for v in values], pa.list_(pa.float32()))
    if col.type == "integer":
        return pa.array(values, pa.int64())
    if col.type == "float":
        return pa.array([_float(v) for v in values], pa.float64())
    if col.type == "boolean":
        return pa.array(values, pa.bool_())
    if col.type == "date":
        return pa.array([None if v is None else date.fromisoformat(v) for v in values], pa.date32())
    if col.type == "timestamp":
        return pa.array([_timestamp(v) for v in values], pa.timestamp("us", tz="UTC"))
    if col.type == "json":
        return pa.array(
            [None if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string()
        )
    return pa.array(values, pa.string())


def read_curated_rest(
    dataset: str,
    version: str | None = None,
    columns: list[str] | None = None,
    *,
    as_arrow: bool = False,
    url: str | None = None,
    key: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    client=None,
) -> pd.DataFrame | pa.Table:
    """Read one curated version through Supabase REST with the key's rights; see the module."""

    check_dataset_name(dataset)
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    client = client or rest_client(url, key)
    catalog = {r["version"]: r for r in _catalog(client, dataset)}
    if not catalog:
        raise DatasetNotFound(
            f"dataset {dataset!r} has no curated version this key may read "
            "(it does not exist, or the key's role is not among its readers)"
        )
    if version is None:
        version = current_version(catalog)
    elif version not in catalog:
        raise DatasetNotFound(
            f"dataset {dataset!r} has no curated version {version!r} this key may read; "
            f"versions: {', '.join(sorted(catalog, key=version_sort_key))}"
        )
    entry = catalog[version]
    declared = [Column.model_validate(c) for c in entry.get("schema") or []]
    by_name = {c.name: c for c in declared}
    if columns is None:
        columns = [c.name for c in declared]
    unknown = [c for c in columns if c not in by_name]
    if unknown:
        raise KeyError(
            f"dataset {dataset!r} has no column(s) {unknown}; columns: {', '.join(by_name)}"
        )
    cols = [by_name[c] for c in columns]
    select = ",".join(_field(c) for c in columns)

    table_api = client.schema(CURATED_SCHEMA)
    values: dict[str, list[Any]] = {c: [] for c in columns}
    total: int | None = None
    offset = 0
    while total is None or offset < total:
        query = table_api.table(dataset).select(select, count="exact" if total is None else None)
        query = query.eq("dataset_version", version)
        for name in ORDER:
            query = query.order(name)
        resp = query.range(offset, offset + page_size - 1).execute()
        rows = resp.data or []
        if total is None:
            total = int(resp.count) if resp.count is not None else None
            if total is None:
                raise RuntimeError("the REST API did not return a count (Prefer: count=exact)")
        if not rows:
            if offset < total:
                raise ConcurrentChange(
                    f"{dataset} {version}: {total} row(s) were counted but only {offset} could be "
                    "read; the version was replaced meanwhile: read it again"
                )
            break
        for row in rows:
            for c in columns:
                values[c].append(row.get(c))
        offset += len(rows)  # a server cap below page_size just means more pages
    after = {r["version"]: r for r in _catalog(client, dataset)}.get(version)
    if (
        after is None
        or after.get("curated_at") != entry.get("curated_at")
        or offset != (total or 0)
    ):
        raise ConcurrentChange(
            f"{dataset} {version} was replaced while it was read ({offset} row(s)); read it again"
        )
    table = pa.Table.from_arrays(
        [column_array(c, values[c.name]) for c in cols], names=[c.name for c in cols]
    )
    table = typed_table(table, cols)
    if as_arrow:
        return table
    return to_pandas(table, cols)
