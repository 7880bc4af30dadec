"""Shared by both read paths (ADBC and REST): the declared types of a curated version, as Arrow
and as pandas."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

from dynamic_assets.declarations.model import Column


class DatasetNotFound(LookupError):
    """The dataset or version has not reached curated."""


def typed_table(table: pa.Table, cols: list[Column]) -> pa.Table:
    """The Arrow table with the declared types of `cols` (json as text, vectors as fixed-size lists)."""
    arrays = []
    fields = []
    for col, arr in zip(cols, table.columns, strict=True):
        if col.type == "json":
            arr = (
                pa.chunked_array(
                    [
                        pa.array(
                            [None if v is None else str(v) for v in chunk.to_pylist()], pa.string()
                        )
                        for chunk in arr.chunks
                    ],
                    pa.string(),
                )
                if not pa.types.is_string(arr.type)
                else arr
            )
        elif col.vector_dim:
            arr = (
                arr.cast(pa.list_(pa.float32(), col.vector_dim))
                if len(arr)
                else arr.cast(pa.list_(pa.float32(), col.vector_dim))
            )
        arrays.append(arr)
        fields.append(
            pa.field(
                col.name, arr.type, nullable=col.nullable, metadata={"declared_type": col.type}
            )
        )
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _pandas_types() -> dict:
    import pandas as pd

    return {
        pa.int64(): pd.Int64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
        pa.string(): pd.StringDtype(),
        pa.large_string(): pd.StringDtype(),
    }


def to_pandas(table: pa.Table, cols: list[Column]) -> pd.DataFrame:
    """The pandas frame trainers get: nullable Int64/boolean/string, datetime64, json as objects,
    vectors as float32 arrays. (pandas loads here, with the first frame asked for.)"""
    import pandas as pd

    plain = [c.name for c in cols if c.type not in ("json",) and not c.vector_dim]
    frame = table.select(plain).to_pandas(
        types_mapper=_pandas_types().get,
        date_as_object=False,
        split_blocks=True,
        self_destruct=False,
    )
    for col in cols:
        if col.type == "date" and col.name in frame:
            frame[col.name] = frame[col.name].astype("datetime64[s]")
        elif col.type == "float" and col.name in frame:
            frame[col.name] = frame[col.name].astype("float64")
        elif col.type == "json":
            values = table.column(col.name).to_pylist()
            frame[col.name] = pd.Series(
                [None if v is None else json.loads(v) for v in values], dtype="object"
            )
        elif col.vector_dim:
            arr = table.column(col.name).combine_chunks()
            flat = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
            if arr.null_count == 0:
                matrix = flat.reshape(-1, col.vector_dim)
                frame[col.name] = pd.Series(list(matrix), dtype="object")
            else:
                frame[col.name] = pd.Series(
                    [
                        None if v is None else np.asarray(v, dtype=np.float32)
                        for v in arr.to_pylist()
                    ],
                    dtype="object",
                )
    return frame[[c.name for c in cols]]
