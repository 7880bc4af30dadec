"""A curated version as the Parquet object a mirror holds: the declared columns and the rows'
origin (`_source_file_id`, `_source_row`), byte-for-byte reproducible (`copies.export`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dynamic_assets.copies.export import ROW_ORIGIN, Export
from dynamic_assets.copies.export import export_version as export_copy
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Column

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


@contextmanager
def export_version(
    db: Database,
    dataset: str,
    version: str,
    columns: list[Column],
    *,
    fingerprint: str | None = None,
) -> Iterator[Export]:
    """The curated version as Parquet in a spooled temporary file (closed on exit): the declared
    columns with their declared types, then `_source_file_id` and `_source_row`."""
    with export_copy(
        db, dataset, version, columns, governance=ROW_ORIGIN, fingerprint=fingerprint
    ) as exported:
        yield exported
