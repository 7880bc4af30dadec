"""Two `dynamic-assets run` processes started at once on one home: both finish cleanly, and
every version is brought to curated once, with all its rows and its fingerprint."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from psycopg import sql

from dynamic_assets_tests.cli.test_cli import env

REPO = Path(__file__).resolve().parents[2]
ANOTHER_RUN = "another run is bringing "


def _file_rows(path: Path) -> int:
    """Rows of one drive file, read with the standard library (CSV, JSON, JSON Lines) or
    pyarrow's Parquet metadata."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            return sum(1 for _ in csv.DictReader(f))
    if path.suffix == ".jsonl":
        return sum(1 for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip())
    if path.suffix == ".json":
        return len(json.loads(path.read_text(encoding="utf-8")))
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    raise AssertionError(f"unexpected file {path}")


def _drive_rows(drive: Path) -> dict[tuple[str, str], int]:
    """(dataset, version) -> rows of the version folder's data files."""
    out: dict[tuple[str, str], int] = {}
    for folder in sorted((drive / "datasets").glob("*/*")):
        files = [f for f in folder.iterdir() if f.name != "README.md"]
        out[(folder.parent.name, folder.name)] = sum(_file_rows(f) for f in files)
    return out


def _cli(*args: str, environ: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dynamic_assets.cli", *args],
        env=environ,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_at_once_curate_each_version_once(tmp_path, db_url, db):
    environ = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    environ.update({k: v for k, v in env(tmp_path, db_url).items() if k != "DAGSTER_HOME"})
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")]))
    environ["COLUMNS"] = "200"  # one line per message on the captured consoles
    seeded = _cli("seed", "--scale", "1", environ=environ)
    out, errors = seeded.communicate()
    assert seeded.returncode == 0, out + errors
    expected = _drive_rows(tmp_path / "drive")
    assert len(expected) == 6

    first = _cli("run", "--no-train", environ=environ)
    second = _cli("run", "--no-train", environ=environ)
    outputs = [(p, *p.communicate()) for p in (first, second)]

    for proc, out, errors in outputs:
        assert "Traceback" not in out + errors, out + errors
        assert proc.returncode == 0, out + errors
        # A version the other run holds is named in one line, with that run's id.
        for line in (out + errors).splitlines():
            if ANOTHER_RUN in line:
                assert line.split(ANOTHER_RUN, 1)[1].split(" to curated (run id ")[1].strip(")"), (
                    line
                )
    with db.connect() as conn:
        curations = dict(
            conn.execute(
                """SELECT dataset || ' ' || version, count(*) FROM public.etl_runs
                    WHERE step = 'curate' AND status = 'succeeded' GROUP BY 1"""
            ).fetchall()
        )
        curated = {
            (ds, ver): rows
            for ds in {d for d, _ in expected}
            for ver, rows in conn.execute(
                sql.SQL("SELECT dataset_version, count(*) FROM {} GROUP BY 1").format(
                    sql.Identifier("ai_curated", ds)
                )
            ).fetchall()
        }
        fingerprints = dict(
            conn.execute(
                "SELECT name || ' ' || version, fingerprint FROM public.datasets"
                " WHERE status = 'curated'"
            ).fetchall()
        )
    versions = {f"{ds} {ver}" for ds, ver in expected}
    assert curations == dict.fromkeys(versions, 1)
    assert curated == expected
    assert set(fingerprints) == versions
    assert all(fingerprints.values()), fingerprints
