"""End-to-end benchmark: one `dynamic-assets run` of a CSV file to curated, fingerprinted and
attested, against `psql \\copy` of the same file into the same Postgres, in the same run.

    python benchmarks/end_to_end.py                      # 1,000,000 and 4,000,000 rows
    python benchmarks/end_to_end.py --rows 200000        # quick run

For each row count it generates (or reuses) an 11-column mixed CSV in `benchmarks/.data/`
(commas, quotes, newlines and unicode in text, nulls, dates, timestamps, floats, booleans),
declares it with `dynamic-assets declare` (the expectations it proposes are the ones checked),
starts one embedded PostgreSQL in a temporary home and keeps it up while it measures, each in its
own process:

  - `psql \\copy` into a typed table (the baseline);
  - `dynamic-assets run --no-train` of the version folder holding the file: wall time and peak
    RSS (VmHWM of the process), with the step times the run recorded in `etl_runs`;
  - a second `dynamic-assets run --no-train` with nothing new to do;
  - `read_curated` of the version against the physical limit, the same rows read by binary
    `COPY ... TO` into Arrow through ADBC (alternating, 3 times each, the median), and
    `pandas.read_sql` (once).

The figures go to stdout as Markdown and to `benchmarks/.data/end_to_end.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import watch  # noqa: E402  (the same process watcher as the ingest benchmark)

DATA_DIR = HERE / ".data"
RESULTS = DATA_DIR / "end_to_end.json"
DATASET = "bench"
VERSION = "2024-06-01"
CHUNK = 250_000
GENERATOR_VERSION = 1
PG_TYPES = {
    "integer": "bigint",
    "float": "double precision",
    "date": "date",
    "timestamp": "timestamptz",
    "boolean": "boolean",
    "string": "text",
    "json": "jsonb",
}
NOTES = [
    "plain note",
    'Zürich, "quoted"\nline2 – 東京',
    "comma, separated, words",
    'she said "hi", then left',
    "naïve café – résumé",
    "emoji 🚀 and a tab\tinside",
]


def generate(path: Path, rows: int) -> None:
    """Write `rows` rows of 11 mixed columns with pyarrow's CSV writer (quoting as needed)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    stamp = path.with_suffix(".rows")
    if path.exists() and stamp.exists() and stamp.read_text() == f"{GENERATOR_VERSION}:{rows}":
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    tmp = path.with_suffix(".tmp")
    with pacsv.CSVWriter(tmp, _schema()) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            ids = np.arange(start, start + n, dtype=np.int64)
            day = np.datetime64("2020-01-01") + (ids // 5000).astype("timedelta64[D]")
            ts = np.datetime64("2020-01-01T00:00:00", "s") + (ids * 37).astype("timedelta64[s]")
            notes = np.array(NOTES, dtype=object)[rng.integers(0, len(NOTES), n)]
            notes = np.char.add(notes.astype(str), np.char.add(" #", ids.astype(str)))
            mask = rng.random(n) < 0.05
            batch = pa.record_batch(
                [
                    pa.array(ids),
                    pa.array(np.array(["AAPL", "MSFT", "GOOG", "TSLA", "NVDA"])[ids % 5]),
                    pa.array(np.array(["NYSE", "NASDAQ", "LSE"])[ids % 3]),
                    pa.array(day.astype(str)),
                    pa.array(np.char.add(ts.astype(str), "Z")),
                    pa.array(np.round(rng.lognormal(4, 0.3, n), 4)),
                    pa.array(rng.integers(1, 10_000, n)),
                    pa.array(np.round(rng.normal(0, 1000, n), 2), mask=mask),
                    pa.array(ids % 2 == 0),
                    pa.array(notes, mask=rng.random(n) < 0.02),
                    pa.array(rng.random(n)),
                ],
                schema=_schema(),
            )
            writer.write_batch(batch)
    tmp.replace(path)
    stamp.write_text(f"{GENERATOR_VERSION}:{rows}")


def _schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.int64()),
            ("symbol", pa.string()),
            ("venue", pa.string()),
            ("day", pa.string()),
            ("ts", pa.string()),
            ("price", pa.float64()),
            ("qty", pa.int64()),
            ("amount", pa.float64()),
            ("flag", pa.bool_()),
            ("note", pa.string()),
            ("ratio", pa.float64()),
        ]
    )


def cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dynamic-assets")), *args]


def _place(source: Path, target: Path) -> None:
    """A file in the drive (the local drive does not follow symbolic links): a hard link, or a
    copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def psql(uri: str, command: str) -> list[str]:
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", uri, "-c", command]


def measure(rows: int, work: Path) -> dict:
    import yaml

    from dynamic_assets.db.connection import embedded_uri

    csv_path = DATA_DIR / f"end_to_end_{rows}.csv"
    generate(csv_path, rows)
    size = csv_path.stat().st_size
    home, drive = work / "home", work / "drive"
    folder = drive / "datasets" / DATASET / VERSION
    folder.mkdir(parents=True)
    _place(csv_path, folder / "part.csv")
    config = work / "declarations.yaml"
    env = {
        **os.environ,
        "DYNAMIC_ASSETS_HOME": str(home),
        "DYNAMIC_ASSETS_DRIVE": str(drive),
        "DYNAMIC_ASSETS_CONFIG": str(config),
    }
    for key in ("SUPABASE_DB_URL", "DATABASE_URL"):
        env.pop(key, None)
    os.environ.clear()  # `watch` starts its command with this process's environment
    os.environ.update(env)
    config.write_text("datasets: []\n")
    uri = embedded_uri(home / "postgres")  # held by this process: every step joins it
    subprocess.run(
        cli("declare", DATASET, "--from", str(folder / "part.csv"), "--config", str(config)),
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    declared = yaml.safe_load(config.read_text())["datasets"][0]
    columns = [
        (c["name"], PG_TYPES.get(c.get("type", "string"), "text")) for c in declared["columns"]
    ]
    out: dict = {"rows": rows, "mb": round(size / 1e6, 1)}
    out["expectations"] = len(declared.get("expectations") or [])

    table = "baseline_copy"
    subprocess.run(
        psql(
            uri,
            f"CREATE TABLE {table} ("  # names come from our own generator, not from input
            + ", ".join(f'"{n}" {t}' for n, t in columns)
            + ")",
        ),
        check=True,
    )
    out["psql_copy"] = watch(psql(uri, f"\\copy {table} FROM '{csv_path}' CSV HEADER"))

    run = cli("run", "--no-train")
    first = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first.wait()  # warm nothing: the measured run is the next one, on a fresh version
    out["run"] = _run_once(run, env, work, folder)
    out["steps"] = _steps(uri)
    started = time.perf_counter()
    subprocess.run(run, env=env, check=True, stdout=subprocess.DEVNULL)
    out["empty_run_s"] = time.perf_counter() - started
    out["read"] = _reads(env, uri)
    return out


def _run_once(run: list[str], env: dict[str, str], work: Path, folder: Path) -> dict:
    """Time a run that brings a new version (the same bytes under a second version folder)."""
    second = folder.parent / "2024-06-02"
    second.mkdir()
    _place(folder / "part.csv", second / "part.csv")
    log = work / "run.log"
    started = time.time()
    with open(log, "w") as f:
        result = watch_tree(run, stdout=f)
    result["started_unix"] = started
    logs = sorted((work / "home" / "logs").glob("run-*.log"))
    if logs:  # Dagster's log of the measured run, beside the timeline of its memory
        shutil.copyfile(logs[-1], DATA_DIR / "end_to_end_run.log")
    return result


def watch_tree(cmd: list[str], stdout=None) -> dict:
    """`watch`, and the memory of the processes the command starts (the process that runs the
    Great Expectations checks): each one's peak (VmHWM) and the peak of their sum (VmRSS)."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout)
    own, children, together = 0.0, {}, 0.0
    timeline: list[tuple[float, float, float]] = []  # (s, the run's RSS MB, its children's)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        now, mine = 0.0, 0.0
        for p in tree:
            hwm, rss = _memory_mb(p.pid)
            now += rss
            if p.pid == proc.pid:
                own, mine = max(own, hwm), rss
            else:
                children[p.pid] = max(children.get(p.pid, 0.0), hwm)
        together = max(together, now)
        timeline.append((round(time.perf_counter() - started, 2), mine, round(now - mine, 1)))
        time.sleep(0.05)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{cmd[0]} {' '.join(cmd[1:4])} ... failed")
    return {
        "wall_s": time.perf_counter() - started,
        "vmhwm_mb": own,
        "children_vmhwm_mb": max(children.values(), default=0.0),
        "together_rss_mb": together,
        "ru_maxrss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "timeline": timeline,
    }


def _memory_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process in MB; zeros once it is gone."""
    found = {"VmHWM:": 0.0, "VmRSS:": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0] + ":"
                if key in found:
                    found[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return found["VmHWM:"], found["VmRSS:"]


def _steps(uri: str) -> dict:
    import psycopg

    with psycopg.connect(uri) as conn:
        rows = conn.execute(
            "SELECT step, sum(duration_s), sum(checks_s) FROM public.etl_runs "
            "WHERE dataset = %s AND version = '2024-06-02' GROUP BY step",
            (DATASET,),
        ).fetchall()
    steps = {step: round(float(s or 0), 2) for step, s, _ in rows}
    steps["checks"] = round(sum(float(c or 0) for _, _, c in rows), 2)
    return steps


READ = """
import sys, time, json
from dynamic_assets.client import read_curated
t = time.perf_counter(); table = read_curated(sys.argv[1], sys.argv[2], as_arrow=True); s = time.perf_counter() - t
print(json.dumps({"seconds": s, "rows": table.num_rows}))
"""
ADBC = """
import sys, time, json
import adbc_driver_postgresql.dbapi as adbc
t = time.perf_counter()
with adbc.connect(sys.argv[1]) as c, c.cursor() as cur:
    cur.execute(sys.argv[2]); table = cur.fetch_arrow_table()
print(json.dumps({"seconds": time.perf_counter() - t, "rows": table.num_rows}))
"""
PANDAS = """
import sys, time, json
import pandas, sqlalchemy
e = sqlalchemy.create_engine(sys.argv[1].replace("postgresql://", "postgresql+psycopg://", 1))
t = time.perf_counter(); df = pandas.read_sql(sys.argv[2], e); s = time.perf_counter() - t
print(json.dumps({"seconds": s, "rows": len(df)}))
"""


def _reads(env: dict[str, str], uri: str, rounds: int = 3) -> dict:
    """`read_curated` and binary COPY into Arrow, alternating, `rounds` times each (the median
    and every figure kept), then `pandas.read_sql` once; each in a fresh process."""
    import statistics

    import psycopg
    from psycopg import sql

    with psycopg.connect(uri) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "'ai_curated' AND table_name = %s AND column_name <> 'dataset_version' "
                "AND column_name NOT LIKE '\\_%%' ORDER BY ordinal_position",
                (DATASET,),
            ).fetchall()
        ]
        query = (
            sql.SQL("SELECT {} FROM {} WHERE dataset_version = {}")
            .format(
                sql.SQL(", ").join(sql.Identifier(n) for n in names),
                sql.Identifier("ai_curated", DATASET),
                sql.Literal(VERSION),
            )
            .as_string(conn)
        )

    def once(code: str, args: list[str]) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
        )
        if done.returncode:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        return json.loads(done.stdout.strip().splitlines()[-1])

    runs: dict[str, list[dict]] = {"read_curated": [], "adbc_copy": []}
    for _ in range(rounds):
        runs["read_curated"].append(once(READ, [DATASET, VERSION]))
        runs["adbc_copy"].append(once(ADBC, [uri, query]))
    out: dict[str, dict] = {}
    for label, results in runs.items():
        failed = [r for r in results if "error" in r]
        if failed:
            out[label] = failed[0]
            continue
        seconds = [r["seconds"] for r in results]
        out[label] = {**results[0], "seconds": statistics.median(seconds), "each": seconds}
    out["pandas_read_sql"] = once(PANDAS, [uri, query])
    return out


def markdown(results: list[dict]) -> str:
    lines = [
        "| rows | CSV MB | expectations | `psql \\copy` s | `run` s | run vs psql | peak RSS MB "
        "| stage s | curate s | empty `run` s | `read_curated` s | binary COPY to Arrow s "
        "| `pandas.read_sql` s | checks s | checks vs stage | checks process peak MB "
        "| run + checks process RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        base, run = r["psql_copy"]["wall_s"], r["run"]["wall_s"]
        rd = r["read"]
        lines.append(
            f"| {r['rows']:,} | {r['mb']} | {r['expectations']} | {base:.1f} | {run:.1f} "
            f"| {base / run:.2f}x | {r['run']['vmhwm_mb']:.0f} | {r['steps'].get('stage', 0)} "
            f"| {r['steps'].get('curate', 0)} | {r['empty_run_s']:.1f} "
            f"| {rd['read_curated'].get('seconds', float('nan')):.2f} "
            f"| {rd['adbc_copy'].get('seconds', float('nan')):.2f} "
            f"| {rd['pandas_read_sql'].get('seconds', float('nan')):.2f} "
            f"| {r['steps'].get('checks', 0)} "
            f"| {r['steps'].get('checks', 0) / max(r['steps'].get('stage', 0), 1e-9):.2f}x "
            f"| {r['run'].get('children_vmhwm_mb', 0):.0f} "
            f"| {r['run'].get('together_rss_mb', 0):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    args = parser.parse_args(argv)
    results = []
    saved = dict(os.environ)
    for rows in args.rows:
        os.environ.clear()
        os.environ.update(saved)
        with tempfile.TemporaryDirectory(prefix="dai-e2e-") as work:
            results.append(measure(rows, Path(work)))
        print(markdown(results[-1:]), flush=True)
    DATA_DIR.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))
    print()
    print(markdown(results))


if __name__ == "__main__":
    main()
