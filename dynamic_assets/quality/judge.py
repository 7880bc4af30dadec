"""The process in which Great Expectations judges a version.

Great Expectations takes seconds of CPU and about 220 MB to import (pandas, SQLAlchemy and its
own modules; `scipy.stats`, which it imports too, loads only when an expectation uses it). A run starts one child process for it when a version's staging begins
(`prepare`), so the import happens while the file streams into Postgres, on the other core; the
expectations then run there (`run_expectations`), with the same results as in this process, and
this process never holds Great Expectations' memory. One child serves every version of the
process and ends with it; one that died is replaced and the version judged again.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from dynamic_assets.declarations.model import Dataset
from dynamic_assets.quality import expectations

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_warm: Future | None = None


# Modules Great Expectations imports when it loads but uses only inside the functions of
# expectations the declarations may never name (`scipy.stats`: the distribution tests, about
# 55 MB): they load when first used.
LAZY_MODULES = ("scipy.stats",)


def _lazy(name: str) -> None:
    """Put `name` in `sys.modules` as a module that executes on its first attribute access."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # `from scipy import stats` finds it without touching it
        setattr(sys.modules[parent], child, module)


def _import() -> None:
    for name in LAZY_MODULES:
        _lazy(name)
    import great_expectations  # noqa: F401  (the import is the point)
    from great_expectations.expectations.registry import get_expectation_impl  # noqa: F401


def _ready() -> bool:
    return True


def prepare() -> None:
    """Start the judging process, if none is running, and its import of Great Expectations."""
    global _pool, _warm
    with _lock:
        if _pool is None:
            # spawn: a fresh interpreter, never a fork of this one's threads and connections.
            _pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_import
            )
            _warm = _pool.submit(_ready)


def _submit(uri: str, ds: Dataset, version: str, table: str | None) -> Future:
    global _pool
    for _ in range(2):
        prepare()
        assert _pool is not None
        try:
            return _pool.submit(expectations.run_expectations, uri, ds, version, table=table)
        except BrokenProcessPool:  # its process died since the last version: start another
            with _lock:
                _pool = None
    raise RuntimeError("the process that runs Great Expectations could not be started")


class Judging:
    """The declared expectations of one version, being judged in the judging process."""

    def __init__(self, uri: str, ds: Dataset, version: str, table: str | None):
        self._args = (uri, ds, version)
        self._table = table
        self._future: Future | None = None
        if ds.expectations:
            self._future = _submit(uri, ds, version, table)

    def result(self) -> list[expectations.ExpectationOutcome]:
        """The outcomes, one per declared expectation (waits for them)."""
        global _pool
        if self._future is None:
            return []
        try:
            return self._future.result()
        except BrokenProcessPool:
            # The process died (killed, out of memory): the version is judged again in a new one.
            with _lock:
                _pool = None
            try:
                return _submit(*self._args, self._table).result()
            except BrokenProcessPool:
                with _lock:
                    _pool = None
                raise RuntimeError(
                    "the process that runs Great Expectations ended twice while judging "
                    f"{self._args[1].name} {self._args[2]}"
                ) from None


def run_expectations(
    uri: str, ds: Dataset, version: str, *, table: str | None = None
) -> list[expectations.ExpectationOutcome]:
    """`quality.expectations.run_expectations`, in the judging process."""
    return Judging(uri, ds, version, table).result()
