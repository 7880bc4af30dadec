"""Arrow arrays and scalars made from Python and NumPy values without importing pandas.

`pa.array` and `pa.scalar`, and a compute function given a plain Python value, first ask
pyarrow's pandas integration whether the value is a pandas object, which imports pandas: about
30-50 MB resident in a process that never holds a DataFrame (a `run` that stages a version).
These build the same arrays from their buffers instead (`pa.Array.from_buffers`), which touches
no pandas. Code on the staging path uses them; code that returns DataFrames need not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def strings(values: Sequence[str | bytes | None], type_: pa.DataType | None = None) -> pa.Array:
    """A string (or, with `type_=pa.binary()`, binary) array of `values`; None is NULL."""
    type_ = type_ or pa.string()
    encoded = [b"" if v is None else v.encode() if isinstance(v, str) else bytes(v) for v in values]
    missing = [v is None for v in values]
    lengths = np.fromiter((len(v) for v in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    large = type_ in (pa.large_string(), pa.large_binary())
    if not large and offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("the values hold more than 2 GiB: use a large type")
    data = pa.py_buffer(b"".join(encoded))
    offsets_buffer = pa.py_buffer(offsets if large else offsets.astype(np.int32))
    validity = booleans(~np.array(missing, dtype=bool)).buffers()[1] if any(missing) else None
    return pa.Array.from_buffers(type_, len(encoded), [validity, offsets_buffer, data])


def numbers(values: np.ndarray) -> pa.Array:
    """An integer or float array of a one-dimensional NumPy array, none of them NULL."""
    values = np.ascontiguousarray(values)
    type_ = pa.from_numpy_dtype(values.dtype)
    if not (pa.types.is_integer(type_) or pa.types.is_floating(type_)):
        raise TypeError(f"numbers() takes integers or floats, not {values.dtype}")
    return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(values)])


def booleans(values: np.ndarray) -> pa.Array:
    """A boolean array of a one-dimensional NumPy array of truth values, none of them NULL."""
    bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def text(value: str) -> pa.Scalar:
    """`value` as a string scalar, to give a compute function in place of a Python `str`."""
    return strings([value])[0]


def null(type_: pa.DataType) -> pa.Scalar:
    """The NULL of `type_` as a scalar."""
    return pa.nulls(1, type_)[0]


def empty(type_: pa.DataType) -> pa.Array:
    """An array of `type_` with no values."""
    return pa.nulls(0, type_)
