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
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dynamic_assets.declarations.columns import HNSW_MAX_DIM as HNSW_MAX_DIM
from dynamic_assets.declarations.columns import MAX_VECTOR_DIM as MAX_VECTOR_DIM
from dynamic_assets.declarations.columns import PG_TYPES as PG_TYPES
from dynamic_assets.declarations.columns import SCALAR_TYPES as SCALAR_TYPES
from dynamic_assets.declarations.columns import VECTOR_TYPE as VECTOR_TYPE
from dynamic_assets.declarations.columns import Column as Column
from dynamic_assets.declarations.names import check_column_name, check_dataset_name, check_role_name
from dynamic_assets.declarations.platforms import Platform, check_platforms
from dynamic_assets.declarations.storage import Lifecycle, Storage

FORMAT_FAMILIES = {"csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}
FILE_EXTENSIONS = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
FileFormat = Literal["csv", "json", "jsonl", "parquet"]
# What a message, a log, metadata or a record shows in place of a value of a dataset declared
# sensitive (a value, or text a parser or the database quoted from one).
WITHHELD = "(value withheld: sensitive dataset)"


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


def _csv_only() -> list[FileFormat]:
    """The formats of a dataset whose declaration names none."""
    return ["csv"]


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    formats: list[FileFormat] = Field(default_factory=_csv_only)
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
    lifecycle: Lifecycle | None = None  # where its versions live as they age (storage tiers)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_dataset_name(v)

    @field_validator("readers")
    @classmethod
    def _readers(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(check_role_name(r) for r in v))

    @model_validator(mode="after")
    def _consistent(self) -> Dataset:
        if not self.columns:
            raise ValueError(f"dataset {self.name!r} declares no columns")
        names = [c.name for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"dataset {self.name!r} declares column(s) twice: {sorted(dupes)}")
        headers = [c.header for c in self.columns]
        for header in dict.fromkeys(h for h in headers if headers.count(h) > 1):
            mapped = [c.name for c in self.columns if c.header == header]
            raise ValueError(
                f"dataset {self.name!r} maps two columns from the header {header!r}: {mapped}"
            )
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
    def sensitive(self) -> bool:
        """Declared sensitive: no value of its data may reach a message, log, metadata or store."""
        return self.sensitivity == "sensitive"

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
        fmt = FILE_EXTENSIONS.get(os.path.splitext(file_name)[1].lower())
        return fmt if fmt in self.formats else None


ORDERED_KINDS = {"return", "log_return", "lag", "rolling_mean", "rolling_std"}
REGRESSION_METRICS = ("rmse", "mae", "r2")
CLASSIFICATION_METRICS = ("accuracy", "f1", "log_loss")
# Parameters every training run logs beside the hyperparameters (a hyperparameter may not reuse them).
RESERVED_PARAMS = frozenset(
    {"estimator", "features", "target", "split", "test_size", "random_state", "dataset",
     "dataset_version", "data_fingerprint", "train_rows", "test_rows", "config_hash"}
)  # fmt: skip


class Derived(BaseModel):
    """A column computed from the curated columns (or earlier derived ones) before training.

    kind        value at row t (within `group_by`, rows ordered by `order_by`)
    log         ln(column)
    log_ratio   ln(column / over)                    e.g. high over low: the day's range
    return      column[t] / column[t-p] - 1          p = periods; p < 0 looks ahead:
                                                     column[t+|p|] / column[t] - 1 (a target)
    log_return  ln of the same ratio
    lag         column[t-p]                          (p < 0: column[t+|p|])
    rolling_mean / rolling_std   over the `window` rows ending at t
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["log", "log_ratio", "return", "log_return", "lag", "rolling_mean", "rolling_std"]
    column: str
    over: str | None = None
    periods: int = 1
    window: int | None = Field(default=None, ge=2)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_column_name(v)

    @model_validator(mode="after")
    def _consistent(self) -> Derived:
        if self.kind == "log_ratio" and not self.over:
            raise ValueError(
                f"derived column {self.name!r}: log_ratio needs `over` (the denominator)"
            )
        if self.kind != "log_ratio" and self.over:
            raise ValueError(f"derived column {self.name!r}: `over` is for log_ratio only")
        if self.kind.startswith("rolling_") and self.window is None:
            raise ValueError(f"derived column {self.name!r}: {self.kind} needs `window` (rows)")
        if self.kind in ("return", "log_return", "lag") and self.periods == 0:
            raise ValueError(f"derived column {self.name!r}: periods must not be 0")
        return self

    @property
    def inputs(self) -> list[str]:
        return [self.column] + ([self.over] if self.over else [])

    @property
    def looks_ahead(self) -> bool:
        return self.kind in ("return", "log_return", "lag") and self.periods < 0


class Model(BaseModel):
    """A model trained on a curated dataset: what it reads, how it is fit and how it is scored.

    One training asset per model, partitioned like its dataset; `versions: every` trains each
    version, `latest` only the newest curated one, `current` only the dataset's current version
    (the one last promoted, `dynamic-assets promote`; the newest while none was). Features of type string or boolean are one-hot
    encoded, numeric ones standardized; rows missing a feature or the target are left out.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    dataset: str
    description: str = ""
    versions: Literal["latest", "current", "every"] = "every"
    task: Literal["regression", "classification"] = "regression"
    features: list[str] = Field(min_length=1)
    target: str
    derived: list[Derived] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=list)  # rows of one series (e.g. [symbol])
    order_by: list[str] = Field(default_factory=list)  # time order within a series (e.g. [date])
    estimator: str  # dotted path of a scikit-learn compatible class
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    split: Literal["time", "random"] = "random"  # time: the last test_size of order_by values
    test_size: float = Field(default=0.25, gt=0, lt=1)
    metric: str | None = None  # the headline metric; default rmse (regression), accuracy
    random_state: int = 0
    owners: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_dataset_name(v)

    @field_validator("estimator")
    @classmethod
    def _estimator(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$", v):
            raise ValueError(
                f"estimator {v!r} is not a dotted path such as sklearn.linear_model.Ridge"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Model:
        allowed = REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS
        if self.metric is None:
            self.metric = allowed[0]
        elif self.metric not in allowed:
            raise ValueError(
                f"model {self.name!r}: metric {self.metric!r} does not fit a {self.task}; "
                f"use one of {', '.join(allowed)}"
            )
        clash = sorted(RESERVED_PARAMS & set(self.hyperparameters))
        if clash:
            raise ValueError(
                f"model {self.name!r}: hyperparameter(s) {clash} clash with the parameters every "
                "training run logs; rename them"
            )
        if self.split == "time" and not self.order_by:
            raise ValueError(f"model {self.name!r}: split: time needs order_by (e.g. [date])")
        if self.target in self.features:
            raise ValueError(f"model {self.name!r}: the target {self.target!r} is also a feature")
        ahead = [d.name for d in self.derived if d.looks_ahead and d.name in self.features]
        if ahead:
            raise ValueError(
                f"model {self.name!r}: feature(s) {ahead} look ahead (periods < 0): "
                "future values may only be the target"
            )
        return self

    def check_against(self, ds: Dataset) -> None:
        """Refuse a model whose columns, derivations or target do not fit its dataset."""
        types = {c.name: c.type for c in ds.columns}
        ahead: dict[str, bool] = {}
        where = f"model {self.name!r} on dataset {ds.name!r}"
        for col in [*self.group_by, *self.order_by]:
            if col not in types:
                raise ValueError(f"{where}: group_by/order_by column {col!r} is not declared")
        for d in self.derived:
            if d.name in types:
                raise ValueError(f"{where}: derived column {d.name!r} shadows a declared column")
            for col in d.inputs:
                if col not in types:
                    raise ValueError(
                        f"{where}: derived column {d.name!r} reads {col!r}, which is neither a "
                        "declared column nor derived before it"
                    )
                if types[col] not in ("integer", "float"):
                    raise ValueError(
                        f"{where}: derived column {d.name!r} reads {col!r} of type "
                        f"{types[col]}; derivations need integer or float columns"
                    )
            if d.kind in ORDERED_KINDS and not self.order_by:
                raise ValueError(
                    f"{where}: derived column {d.name!r} ({d.kind}) needs order_by (e.g. [date])"
                )
            types[d.name] = "float"
            ahead[d.name] = d.looks_ahead or any(ahead.get(i, False) for i in d.inputs)
        leaking = [f for f in self.features if ahead.get(f)]
        if leaking:
            raise ValueError(
                f"{where}: feature(s) {leaking} are computed from future values (periods < 0); "
                "only the target may look ahead"
            )
        for col in [*self.features, self.target]:
            if col not in types:
                known = ", ".join(types)
                raise ValueError(
                    f"{where}: column {col!r} is not declared or derived; known: {known}"
                )
        for col in self.features:
            if types[col] not in ("integer", "float", "boolean", "string"):
                raise ValueError(
                    f"{where}: feature {col!r} has type {types[col]}; features are integer, "
                    "float, boolean or string (derive a number from dates and vectors first)"
                )
        target_types = (
            ("integer", "float") if self.task == "regression" else ("integer", "boolean", "string")
        )
        if types[self.target] not in target_types:
            raise ValueError(
                f"{where}: a {self.task} target must be {' or '.join(target_types)}; "
                f"{self.target!r} is {types[self.target]}"
            )


class Declarations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    storage: Storage = Field(default_factory=Storage)  # the core budget, main and archive tiers
    datasets: list[Dataset] = Field(default_factory=list)
    models: list[Model] = Field(default_factory=list)
    platforms: dict[str, Platform] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> Declarations:
        check_platforms(self.platforms)
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
            m.check_against(self.dataset(m.dataset))
        return self

    def dataset(self, name: str) -> Dataset:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(f"dataset {name!r} is not declared")

    def by_name(self) -> dict[str, Dataset]:
        return {d.name: d for d in self.datasets}

    def model(self, name: str) -> Model:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"model {name!r} is not declared")


class ConfigError(ValueError):
    """The declarations file cannot be read; the message names the file and the problem."""


DEMO_CONFIG = Path(__file__).parents[1] / "demo" / "datasets.yaml"


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
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(f"{path}: {_where(e['loc'])}{_what(e)}" for e in exc.errors())
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _where(loc: tuple) -> str:
    """A pydantic error location as the YAML path a reader finds it by (`datasets[0].name: `)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return f"{out}: " if out else ""


def _what(error: Any) -> str:
    """A pydantic error's message: a validator's own text as raised, pydantic's with a lower
    case first letter."""
    cause = (error.get("ctx") or {}).get("error")
    text = str(cause) if error["type"] == "value_error" and cause is not None else error["msg"]
    return text[:1].lower() + text[1:] if error["type"] != "value_error" else text


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
