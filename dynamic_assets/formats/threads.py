"""Items produced on a thread of their own while the caller consumes the ones before."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_END = object()


@contextmanager
def ahead(items: Iterable[T], *, depth: int, name: str) -> Iterator[Iterator[T]]:
    """The items of `items`, iterated (and so produced) on a thread named `name`, at most
    `depth` waiting for the caller. An exception raised producing them is raised where the
    caller takes the next item. On exit the thread is stopped and joined, whether every item was
    taken or not."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consuming thread
            put(exc)

    def taken() -> Iterator[T]:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        yield taken()
    finally:
        stop.set()
        worker.join()
