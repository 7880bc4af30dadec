"""Infer a dataset declaration from sample files: `dynamic-assets declare NAME --from PATH`.

A new dataset dropped into the drive can be taken in without hand-writing YAML: the sample files
are read (at most ``sample_rows`` rows of each, streaming, so memory stays bounded) by the same
readers and rules as the loader (`dynamic_assets.formats`), and each column gets a declared type
and a nullability, and the dataset a primary key guess and a few sober expectations. The result
is a plain :class:`~dynamic_assets.declarations.model.Dataset` for a person to review before it
is saved.

Modules: `samples` (finding and reading the files), `types` (column types), `unique` and `keys`
(primary key candidates), `expectations` (proposed expectations), `declare` (the whole).
"""

from __future__ import annotations

from dynamic_assets.declarations.infer.declare import (
    Inference,
    add_to_declarations,
    infer_dataset,
    infer_declaration,
)

__all__ = ["Inference", "add_to_declarations", "infer_dataset", "infer_declaration"]
