"""Demo drive seeding: realistic, reproducible files for the three demo datasets.

Who it is for: anyone who wants to see the pipeline work without a real OneDrive — the
``dynamic-assets seed`` command, the test suite and the benchmarks. :func:`seed_drive` lays out
a folder shaped like the team's drive::

    <root>/
      datasets/<dataset>/<version>/<data files> + README.md
      model-checkpoints/   etl-staging/   reports/

and fills ``datasets/`` with two versions of each dataset declared in ``demo/datasets.yaml``:

* ``market`` (generated in ``demo.market``) — daily OHLCV bars as CSV, one file per exchange (``nasdaq.csv``, ``nyse.csv``),
  versions ``2024-06-01`` and ``2024-07-01``. Prices follow a geometric random walk; the ``note``
  column is mostly empty, but some notes hold commas, double quotes, newlines and non-ASCII text.
* ``corpus`` (``demo.corpus``) — multilingual news snippets as JSON Lines (``part-0001.jsonl``) and, in ``v1.1``,
  a JSON array (``extra.json``); versions ``v1.0`` and ``v1.1``.
* ``embeddings`` (``demo.embeddings``) — 16-dimensional unit vectors that cluster by label, as Parquet
  (``items.parquet``); versions ``v2.3`` and ``v2.3.1``.

The second version of each dataset overlaps the first and differs from it the way a refreshed
delivery does: restated rows, revised documents, re-embedded items and new rows.

Everything is derived from ``seed`` (numpy ``default_rng`` and seeded Faker instances) and from
fixed dates, never from the clock, so seeding the same root twice gives byte-identical files;
a file whose bytes would not change is not rewritten (its modification time stays put).
The generated values match the declared columns, types, primary keys, non-null columns and
expectations; a declaration the generators cannot satisfy is refused with a ``ValueError``.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynamic_assets.declarations.model import DEMO_CONFIG, Dataset, Declarations, load_declarations
from dynamic_assets.demo import corpus, embeddings, market
from dynamic_assets.demo.generate import SEED_VERSIONS, GeneratedVersion

__all__ = ["DRIVE_FOLDERS", "SEED_VERSIONS", "SeededFile", "seed_drive"]

DRIVE_FOLDERS = ("datasets", "model-checkpoints", "etl-staging", "reports")

GENERATOR = "dynamic_assets.demo.seed.seed_drive"


@dataclass(frozen=True)
class SeededFile:
    """One data file written by :func:`seed_drive`; ``path`` is relative to the drive root."""

    dataset: str
    version: str
    path: str
    rows: int
    bytes: int


# The generator of each demo dataset: its module's CONTRACT (column -> (declared type, whether it
# ever writes a null)) and generate(ds, rng, scale).
GENERATORS = {"market": market, "corpus": corpus, "embeddings": embeddings}


def seed_drive(
    root: Path, declarations: Declarations | None = None, *, scale: int = 1, seed: int = 7
) -> list[SeededFile]:
    """Create (or refresh) the demo drive under ``root`` and return the data files written.

    ``declarations`` defaults to the demo configuration; only the datasets it declares among
    ``market``, ``corpus`` and ``embeddings`` are seeded. ``scale`` multiplies the row counts.
    README.md files are written next to the data but are not part of the returned list.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, not {scale!r}")
    if declarations is None:
        declarations = load_declarations(DEMO_CONFIG)
    root = Path(root)
    for folder in DRIVE_FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)

    seeded: list[SeededFile] = []
    for ds in declarations.datasets:
        generator = GENERATORS.get(ds.name)
        if generator is None:
            continue
        _check_contract(ds, generator.CONTRACT)
        rng = np.random.default_rng([seed, zlib.crc32(ds.name.encode())])
        for v in generator.generate(ds, rng, scale):
            folder = root / "datasets" / ds.name / v.version
            folder.mkdir(parents=True, exist_ok=True)
            for f in v.files:
                _write_if_changed(folder / f.name, f.data)
                rel = (folder / f.name).relative_to(root).as_posix()
                seeded.append(SeededFile(ds.name, v.version, rel, f.rows, len(f.data)))
            _write_if_changed(folder / "README.md", _readme(ds, v, scale=scale, seed=seed))
    return seeded


# --------------------------------------------------------------------------- shared helpers


def _check_contract(ds: Dataset, contract: dict[str, tuple[str, bool]]) -> None:
    declared = {c.name: c for c in ds.columns}
    problems = []
    if set(declared) != set(contract):
        problems.append(
            f"it declares columns {sorted(declared)}, the seed writes {sorted(contract)}"
        )
    for name, (typ, writes_nulls) in contract.items():
        col = declared.get(name)
        if col is None:
            continue
        if col.type != typ:
            problems.append(f"column {name!r} is declared {col.type}, the seed writes {typ}")
        if writes_nulls and not col.nullable:
            problems.append(f"column {name!r} is declared non-nullable, the seed writes nulls")
    if problems:
        raise ValueError(f"cannot seed dataset {ds.name!r}: " + "; ".join(problems))


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically, and not at all when the file already holds these bytes."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _readme(ds: Dataset, v: GeneratedVersion, *, scale: int, seed: int) -> bytes:
    lines = [f"# {ds.name} — {v.version}", ""]
    if ds.description:
        lines += [ds.description, ""]
    lines += [v.summary, "", "## Schema", ""]
    lines += ["| column | type | nullable | description |", "| --- | --- | --- | --- |"]
    for c in ds.columns:
        lines.append(
            f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.description or ''} |"
        )
    lines.append("")
    if ds.primary_key:
        lines += ["Primary key: " + ", ".join(f"`{k}`" for k in ds.primary_key), ""]
    if ds.expectations:
        lines += ["Expectations:", ""]
        for e in ds.expectations:
            args = ", ".join(f"{k}={val!r}" for k, val in e.kwargs.items())
            lines.append(f"- `{e.type}({args})` ({e.severity})")
        lines.append("")
    lines += ["## Files", "", "| file | rows | bytes |", "| --- | ---: | ---: |"]
    lines += [f"| `{f.name}` | {f.rows} | {len(f.data)} |" for f in v.files]
    lines += [
        "",
        "## Provenance",
        "",
        f"- generator: `{GENERATOR}` (scale={scale})",
        f"- seed: {seed}",
        f"- created: {v.created.isoformat()}",
        f"- sensitivity: {ds.sensitivity}",
        "",
    ]
    return "\n".join(lines).encode("utf-8")
