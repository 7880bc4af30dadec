"""Peak memory of staging JSON Lines: one file whose first line is ~200 MB, one of many short lines.

    python benchmarks/jsonl_memory.py            # both files
    python benchmarks/jsonl_memory.py long       # the long line only

The files are generated once into `benchmarks/.data/`. One embedded PostgreSQL is started; each
file is loaded by `load_version` in a fresh child process, which reports its peak RSS
(`ru_maxrss`) before and after the load, the longest line and the time. The parent never holds
a long line, so a child's `ru_maxrss` starts at the interpreter's own. Results go to stdout and
to `benchmarks/.data/jsonl_memory.json`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data"
RESULTS = DATA_DIR / "jsonl_memory.json"
LONG_TEXT = 20_000_000  # repeats of a 10-character string: a 200 MB line
MANY_LINES = 1_000_000


def data_path(kind: str) -> Path:
    """The file of `kind` (`long` or `many`), written once in a child so the parent stays small."""
    path = DATA_DIR / f"jsonl_{kind}.jsonl"
    if not path.exists():
        subprocess.run([sys.executable, __file__, "--generate", kind], check=True)
    return path


def generate(kind: str) -> None:
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"jsonl_{kind}.jsonl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        if kind == "long":
            f.write(json.dumps({"id": 1, "text": "abcdefghij" * LONG_TEXT}) + "\n")
            f.write(json.dumps({"id": 2, "text": "short"}) + "\n")
        else:
            for i in range(MANY_LINES):
                f.write(json.dumps({"id": i, "text": f"line {i} " + "x" * 150}) + "\n")
    tmp.rename(path)


def measure(uri: str, kind: str) -> None:
    """Child side: load the file and print its figures as one JSON line."""
    import psycopg

    from dynamic_assets.datasets.staging import SourceFile, load_version
    from dynamic_assets.declarations.model import Column, Dataset

    path = DATA_DIR / f"jsonl_{kind}.jsonl"
    longest = line = 0
    with path.open("rb") as f:
        for chunk in iter(partial(f.read, 1 << 20), b""):
            *ends, rest = chunk.split(b"\n")
            for end in ends:
                longest, line = max(longest, line + len(end) + 1), 0
            line += len(rest)
    longest = max(longest, line)
    ds = Dataset(
        name=f"jsonl_{kind}",
        formats=["jsonl"],
        columns=[Column(name="id", type="integer"), Column(name="text", type="string")],
    )
    src = SourceFile(file_id=1, path=path.name, format="jsonl", open=partial(path.open, "rb"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with psycopg.connect(uri, autocommit=True) as conn:
        (load,) = load_version(conn, ds, "v1", [src])
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "file": kind,
                "rows": load.rows,
                "file_mb": round(path.stat().st_size / 1e6, 1),
                "longest_line_mb": round(longest / 1e6, 3),
                "seconds": round(seconds, 2),
                "rss_before_mb": round(before),
                "peak_rss_mb": round(peak),
                "peak_over_longest_line": round(peak * 2**20 / longest, 2),
                "above_start_over_longest_line": round((peak - before) * 2**20 / longest, 2),
            }
        ),
        flush=True,
    )


def main(argv: list[str]) -> None:
    if argv[:1] == ["--generate"]:
        generate(argv[1])
        return
    if argv[:1] == ["--child"]:
        measure(argv[1], argv[2])
        return
    kinds = argv or ["long", "many"]
    for kind in kinds:
        data_path(kind)
    sys.path.insert(0, str(HERE))
    import psycopg
    from ingest import start_server

    from dynamic_assets.db.migrate import apply_migrations

    server, parent = start_server(False)
    results = []
    try:
        uri = server.get_uri()
        with psycopg.connect(uri, autocommit=True) as conn:
            apply_migrations(conn)
        load = os.getloadavg()
        print(f"load average {load[0]:.2f}")
        for kind in kinds:
            out = subprocess.run(
                [sys.executable, __file__, "--child", uri, kind],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(out.strip())
    finally:
        server.cleanup()
    RESULTS.write_text(json.dumps({"load_average": load, "results": results}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
