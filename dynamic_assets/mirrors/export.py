"""A curated version as the Parquet object a mirror holds (`copies.export`): the declared columns
and the rows' origin (`_source_file_id`, `_source_row`, the exporter's default governance
columns), byte-for-byte reproducible."""

from __future__ import annotations

from dynamic_assets.copies.export import Export, export_version

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"

__all__ = ["PARQUET_MEDIA_TYPE", "Export", "export_version"]
