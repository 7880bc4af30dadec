"""The arrays built from buffers equal what `pa.array` and `pa.scalar` build, and building them
imports no pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from dynamic_assets.formats import arrays

TEXTS = ["", None, "a", 'Zürich, "quoted"\nline2 – 東京', "\x00", "😀" * 3, "x" * 70_000]


@pytest.mark.parametrize("type_", [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()])
def test_strings_equal_pyarrows_own(type_):
    values = (
        TEXTS
        if pa.types.is_string(type_) or pa.types.is_large_string(type_)
        else [None if t is None else t.encode() for t in TEXTS]
    )
    built = arrays.strings(values, type_)
    built.validate(full=True)
    assert built.equals(pa.array(values, type_))
    assert arrays.strings([], type_).equals(pa.array([], type_))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.float64, np.float32])
def test_numbers_equal_pyarrows_own(dtype):
    values = np.array([0, 1, -2, 127, 3], dtype=dtype)
    built = arrays.numbers(values)
    built.validate(full=True)
    assert built.equals(pa.array(values))
    assert arrays.numbers(values[::2]).to_pylist() == values[::2].tolist()  # a strided view


def test_numbers_refuse_what_is_not_a_number():
    with pytest.raises(TypeError, match="not <U1"):
        arrays.numbers(np.array(["a"]))


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000])
def test_booleans_equal_pyarrows_own(n):
    values = np.random.default_rng(n).random(n) > 0.5
    built = arrays.booleans(values)
    built.validate(full=True)
    assert built.equals(pa.array(values))


def test_scalars_equal_pyarrows_own():
    assert arrays.text("") == pa.scalar("", pa.string())
    assert arrays.text("é") == pa.scalar("é", pa.string())
    assert arrays.null(pa.string()) == pa.scalar(None, pa.string())
    assert not arrays.null(pa.int64()).is_valid
    assert arrays.empty(pa.date32()).equals(pa.array([], pa.date32()))


def test_building_them_imports_no_pandas():
    code = (
        "import sys, numpy as np, pyarrow as pa, pyarrow.compute as pc\n"
        "from dynamic_assets.formats import arrays\n"
        "s = arrays.strings(['a', '']); n = arrays.numbers(np.arange(3))\n"
        "b = arrays.booleans(np.ones(3, bool)); e = arrays.empty(pa.string())\n"
        "pc.if_else(b, arrays.text('x'), arrays.null(pa.string()))\n"
        "pc.equal(s, arrays.text('')); pc.is_in(s, arrays.strings(['a']))\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stderr
