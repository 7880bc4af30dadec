"""The model of one declared column: its name, type, nullability, the forms its values take,
and the name the files give it (`source`)."""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, field_validator

from dynamic_assets.declarations.names import check_column_name

SCALAR_TYPES = ("string", "integer", "float", "boolean", "date", "timestamp", "json")
VECTOR_TYPE = re.compile(r"^vector\((\d{1,5})\)$")
MAX_VECTOR_DIM = 16_000
HNSW_MAX_DIM = 2_000

MAX_SOURCE_LENGTH = 1024

# Postgres type of each declared type in the curated table.
PG_TYPES = {
    "string": "text",
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamptz",
    "json": "jsonb",
}


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: str = "string"
    nullable: bool = True
    description: str | None = None
    allow_non_finite: bool = False  # float columns: accept NaN / Infinity
    # Text values in any form Postgres reads (0x1F, 1_000, +5) and JSON values of another
    # JSON type ("12" for an integer, 5 for a string); dates and timestamps stay ISO 8601.
    coerce: bool = False
    # The header (CSV), key (JSON) or column name (Parquet) the files give this column under,
    # when it is not `name`: real files carry names such as `Adj. Close*`.
    source: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_column_name(v)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str | None) -> str | None:
        if v is not None and (
            not v or len(v) > MAX_SOURCE_LENGTH or any(unicodedata.category(c) == "Cc" for c in v)
        ):
            raise ValueError(
                f"source header {v!r} is not allowed: it is the name a file gives the column, "
                f"1 to {MAX_SOURCE_LENGTH} characters without control characters"
            )
        return v

    @property
    def header(self) -> str:
        """The name the files give this column: `source`, or else `name`."""
        return self.source if self.source is not None else self.name

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        v = v.strip().lower()
        if v in SCALAR_TYPES:
            return v
        m = VECTOR_TYPE.match(v)
        if m:
            dim = int(m.group(1))
            if not 1 <= dim <= MAX_VECTOR_DIM:
                raise ValueError(
                    f"vector dimension {dim} is out of range: 1 to {MAX_VECTOR_DIM} (pgvector's limit)"
                )
            return v
        raise ValueError(f"{v!r} is not one of {', '.join(SCALAR_TYPES)}, vector(N)")

    @property
    def vector_dim(self) -> int | None:
        m = VECTOR_TYPE.match(self.type)
        return int(m.group(1)) if m else None

    @property
    def pg_type(self) -> str:
        dim = self.vector_dim
        return f"vector({dim})" if dim else PG_TYPES[self.type]
