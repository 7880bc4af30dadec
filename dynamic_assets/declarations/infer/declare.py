"""`infer_declaration` (a declaration from sample files, with notes for its review),
`infer_dataset` (the declaration alone) and `add_to_declarations`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dynamic_assets.declarations.infer.expectations import propose_expectations
from dynamic_assets.declarations.infer.keys import guess_primary_key
from dynamic_assets.declarations.infer.samples import (
    by_version,
    data_files,
    file_names,
    one_family,
    read_sample,
    version_of,
)
from dynamic_assets.declarations.infer.types import Sample
from dynamic_assets.declarations.model import Dataset, Declarations
from dynamic_assets.declarations.names import check_dataset_name, snake_case_names

NO_KEY_HINT = "Add `primary_key:` by hand if the data has one."


@dataclass(frozen=True)
class Inference:
    """A proposed declaration, and what a person reviewing it should know (why no primary key
    was proposed, for one)."""

    dataset: Dataset
    notes: list[str] = field(default_factory=list)


def infer_dataset(name: str, paths: Iterable[Path | str], *, sample_rows: int = 100_000) -> Dataset:
    """Infers the declaration of dataset ``name`` from sample files or folders of them (see
    `infer_declaration`)."""
    return infer_declaration(name, paths, sample_rows=sample_rows).dataset


def infer_declaration(
    name: str, paths: Iterable[Path | str], *, sample_rows: int = 100_000
) -> Inference:
    """Infers the declaration of dataset ``name`` from sample files or folders of them, with
    notes for its review.

    Each column is named in snake_case from the file's name for it (`Adj. Close*` is
    `adj_close`, see `snake_case_names`), which is kept as its `source` when the two differ;
    pandas' index column (`__index_level_0__`) is left out. Raises ValueError, naming the file
    (and line or item where it applies), when the files cannot be read or mix format families.
    """
    check_dataset_name(name)
    if sample_rows < 1:
        raise ValueError(f"sample_rows must be at least 1, not {sample_rows}")
    files = data_files(paths)
    family = one_family(files)

    files = by_version(files)
    sample = Sample(family)
    group = None
    for path, fmt in files:
        if version_of(path) != group:
            group = version_of(path)
            sample.new_version()
        for batch in read_sample(path, fmt, sample_rows):
            sample.add(batch)
        sample.end_file()

    if not sample.columns:
        raise ValueError(f"no columns found in {file_names(files)}: the sample files are empty")
    names = snake_case_names(list(sample.columns))
    columns = [
        stats.to_column(family, sample.rows, name)
        for stats, name in zip(sample.columns.values(), names, strict=True)
    ]
    primary_key, why_none = guess_primary_key(sample, columns, files, sample_rows)
    notes = [f"No primary key proposed: {why_none}. {NO_KEY_HINT}"] if why_none else []
    dataset = Dataset(
        name=name,
        description=(
            f"Declared from {len(files)} sample file(s) ({sample.rows} row(s) read); "
            "review the types, primary key and expectations."
        ),
        formats=sorted({fmt for _, fmt in files}),
        columns=columns,
        primary_key=primary_key,
        expectations=propose_expectations(sample, columns, primary_key),
        sensitivity="internal",
    )
    return Inference(dataset, notes)


def add_to_declarations(
    decls: Declarations, dataset: Dataset, *, replace: bool = False
) -> Declarations:
    """A new Declarations with ``dataset`` added, or put in place of the one of the same name."""
    names = [d.name for d in decls.datasets]
    if dataset.name in names:
        if not replace:
            raise ValueError(
                f"dataset {dataset.name!r} is already declared; pass --replace to overwrite "
                "its declaration"
            )
        datasets = [dataset if d.name == dataset.name else d for d in decls.datasets]
    else:
        datasets = [*decls.datasets, dataset]
    return Declarations(datasets=datasets, models=list(decls.models))
