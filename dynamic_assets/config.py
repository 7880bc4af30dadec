"""Dataset and model declarations: the YAML file that says what the pipeline takes in.

A declaration names a dataset, its file formats, its columns and their types, its primary key,
its expectations, its sensitivity and retention. One asset factory turns each declaration into
assets; nothing about a dataset is written in code.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dynamic_assets.names import check_column_name, check_dataset_name

FORMAT_FAMILIES = {"csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}
FILE_EXTENSIONS = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
SCALAR_TYPES = ("string", "integer", "float", "boolean", "date", "timestamp", "json")
VECTOR_TYPE = re.compile(r"^vector\((\d{1,5})\)$")
MAX_VECTOR_DIM = 16_000
HNSW_MAX_DIM = 2_000

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

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_column_name(v)

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
        raise ValueError(
            f"unknown column type {v!r}: use one of {', '.join(SCALAR_TYPES)} or vector(N)"
        )

    @property
    def vector_dim(self) -> int | None:
        m = VECTOR_TYPE.match(self.type)
        return int(m.group(1)) if m else None

    @property
    def pg_type(self) -> str:
        dim = self.vector_dim
        return f"vector({dim})" if dim else PG_TYPES[self.type]


class Expectation(BaseModel):
    """A Great Expectations expectation: its snake_case type, its arguments and a severity."""

    model_config = ConfigDict(extra="allow")

    type: str
    severity: Literal["error", "warn"] = "error"

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Freshness(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_days_between_versions: int = Field(gt=0)


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    formats: list[Literal["csv", "json", "jsonl", "parquet"]] = Field(
        default_factory=lambda: ["csv"]
    )
    columns: list[Column]
    primary_key: list[str] = Field(default_factory=list)
    expectations: list[Expectation] = Field(default_factory=list)
    sensitivity: Literal["public", "internal", "sensitive"] = "internal"
    retention_days: int | None = Field(default=None, gt=0)
    schema_version: int = Field(default=1, ge=1)
    tags: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    freshness: Freshness | None = None
    readers: list[str] = Field(default_factory=list)
    csv_header: Literal["exact", "by_name"] = "exact"  # exact: same columns in the declared order

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_dataset_name(v)

    @model_validator(mode="after")
    def _consistent(self) -> Dataset:
        if not self.columns:
            raise ValueError(f"dataset {self.name!r} declares no columns")
        names = [c.name for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"dataset {self.name!r} declares column(s) twice: {sorted(dupes)}")
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(
                f"dataset {self.name!r}: primary key column(s) not declared: {missing}"
            )
        families = {FORMAT_FAMILIES[f] for f in self.formats}
        if len(families) != 1:
            raise ValueError(
                f"dataset {self.name!r} mixes formats {self.formats}: a dataset is CSV, JSON/JSONL "
                "or Parquet, so that one staging table fits all its files"
            )
        return self

    @property
    def family(self) -> str:
        return FORMAT_FAMILIES[self.formats[0]]

    @property
    def embeddings(self) -> list[str]:
        return [c.name for c in self.columns if c.vector_dim]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def accepts(self, file_name: str) -> str | None:
        """The format of a file this dataset takes, or None if its extension is not declared."""
        fmt = FILE_EXTENSIONS.get(Path(file_name).suffix.lower())
        return fmt if fmt in self.formats else None


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    dataset: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_dataset_name(v)


class Declarations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasets: list[Dataset] = Field(default_factory=list)
    models: list[Model] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Declarations:
        names = [d.name for d in self.datasets]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"dataset(s) declared twice: {sorted(dupes)}")
        models = [m.name for m in self.models]
        dupes = {n for n in models if models.count(n) > 1}
        if dupes:
            raise ValueError(f"model(s) declared twice: {sorted(dupes)}")
        for m in self.models:
            if m.dataset not in names:
                raise ValueError(
                    f"model {m.name!r} trains on dataset {m.dataset!r}, which is not declared"
                )
        return self

    def dataset(self, name: str) -> Dataset:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(f"dataset {name!r} is not declared")

    def by_name(self) -> dict[str, Dataset]:
        return {d.name: d for d in self.datasets}


class ConfigError(ValueError):
    """The declarations file cannot be read; the message names the file and the problem."""


DEMO_CONFIG = Path(__file__).parent / "demo" / "datasets.yaml"


def load_declarations(path: Path | str) -> Declarations:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: the declarations file does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the declarations file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Declarations.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def dump_declarations(decls: Declarations) -> str:
    data = decls.model_dump(mode="json", exclude_defaults=True)
    for ds in data.get("datasets", []):
        ds.setdefault("columns", [])
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


DECLARATIONS_HEADER = (
    "# Dataset and model declarations for dynamic_assets (written by `dynamic-assets declare`;\n"
    "# hand edits are kept, comments are not).\n"
)


def save_declarations(decls: Declarations, path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(DECLARATIONS_HEADER + dump_declarations(decls))
    os.replace(tmp, path)
