"""How a process streaming many batches gives memory back: Arrow's pool returning freed pages at
once, and (for the copies) large blocks mapped and unmapped on their own rather than kept in the
C library's heaps."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

import pyarrow as pa

# glibc's `mallopt` parameter (malloc.h) and the size from which a block is mapped on its own.
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 256 * 1024


def return_freed_memory() -> None:
    """Arrow's allocations from jemalloc, which gives freed pages back to the system at once
    (decay 0): the default pool (mimalloc) keeps each thread's freed pages, and the batches of
    the two COPY streams are allocated and freed on several threads. A pool chosen in
    `ARROW_DEFAULT_MEMORY_POOL` is left as it is."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return
    pa.jemalloc_set_decay_ms(0)
    pa.set_memory_pool(pool)


@functools.cache
def map_large_blocks() -> bool:
    """Blocks of LARGE_BLOCK bytes or more (numpy's arrays of a batch) mapped on their own and
    unmapped when freed, under glibc. By default glibc raises that threshold each time such a
    block is freed, up to 32 MiB, after which the blocks come from its heaps, one per thread,
    which keep what was freed: archiving 2,000,000 rows over two threads peaked at 269-316 MB
    with the default and at 220-222 MB with this. Whether the setting was made (not under
    another C library, or when `MALLOC_MMAP_THRESHOLD_` is set in the environment)."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is not None:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK))


def bounded_copy_memory() -> None:
    """Both settings, for a process exporting or digesting a version's copy."""
    return_freed_memory()
    map_large_blocks()
