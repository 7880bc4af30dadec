"""Great Expectations judges a version in a process of its own, started while the version
loads: the run's process never imports it (about 270 MB), a judging process that died is
replaced, and the content digest of the typed table is taken while the checks run and is the
one the fingerprint then carries."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys

import psycopg
import pytest

from dynamic_assets.datasets.pipeline import validate
from dynamic_assets.provenance.fingerprint import content_digest, fingerprint_table, schema_record
from dynamic_assets.quality import judge
from dynamic_assets_tests.quality.test_expectation_results import (
    EXPECTATIONS,
    ROWS,
    VERSION,
    gapminder,
    plain_gx,
    stage,
)

CHILD = """
import json, sys
from pathlib import Path
import psycopg
from dynamic_assets.datasets.pipeline import validate
from dynamic_assets.datasets.staging import load_version
from dynamic_assets.db.connection import Database
from dynamic_assets.declarations.model import Dataset
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import recorded_source
db = Database(sys.argv[1])
ds = Dataset.model_validate(json.loads(sys.argv[3]))
local = write_file(Path(sys.argv[2]), "gapminder.csv", sys.argv[4])
with psycopg.connect(db.uri, autocommit=True) as conn:
    load_version(conn, ds, "v1", [recorded_source(conn, ds, "v1", local)])
checked = validate(db, ds, "v1")
print(json.dumps({
    "gx_here": "great_expectations" in sys.modules,
    "outcomes": [[o.success, o.unexpected_count, [e["value"] for e in o.examples]]
                 for o in checked.expectations],
}))
"""


def test_a_run_judges_its_expectations_without_holding_great_expectations(tmp_path, db):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            db.uri,
            str(tmp_path),
            gapminder().model_dump_json(),
            "country,lifeExp,pop\n" + "".join(f"{c},{e},{p}\n" for c, e, p in ROWS),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["gx_here"] is False
    assert [tuple(o) for o in seen["outcomes"]] == plain_gx(gapminder())


def test_a_judging_process_that_died_is_replaced_and_the_version_is_judged(tmp_path, db):
    ds = gapminder()
    with psycopg.connect(db.uri, autocommit=True) as conn:
        stage(conn, tmp_path, ds)
    judge.prepare()
    assert judge._warm is not None and judge._warm.result(timeout=300) is True
    assert judge._pool is not None
    (pid,) = list(judge._pool._processes)  # the one judging process
    os.kill(pid, signal.SIGKILL)

    outcomes = judge.run_expectations(db.uri, ds, VERSION)

    assert [
        (o.success, o.unexpected_count, [e["value"] for e in o.examples]) for o in outcomes
    ] == plain_gx(ds)
    assert judge._pool is not None and pid not in judge._pool._processes


def test_the_fingerprint_carries_the_digest_taken_while_the_checks_ran(tmp_path, db):
    ds = gapminder(expectations=EXPECTATIONS[:2])
    with psycopg.connect(db.uri, autocommit=True) as conn:
        stage(conn, tmp_path, ds)

    checked = validate(db, ds, VERSION)

    assert checked.blocking_failures == [] and checked.build is not None
    table = checked.build.table
    with psycopg.connect(db.uri, autocommit=True) as conn:
        kept = conn.execute(
            "SELECT content_rows, content_digest FROM curated_builds WHERE table_name = %s",
            (table,),
        ).fetchone()
        fresh = content_digest(conn, ds.name, VERSION, schema_record(ds)["columns"], table=table)
        assert kept == (5, fresh.digest)
        (local,) = tmp_path.rglob("gapminder.csv")
        files = [
            {
                "id": fid,
                "path": path,
                "sha256": hashlib.sha256(local.read_bytes()).hexdigest(),
                "size_bytes": local.stat().st_size,
            }
            for fid, path in conn.execute(
                "SELECT id, path FROM onedrive_ingest WHERE dataset = %s", (ds.name,)
            ).fetchall()
        ]
        fp = fingerprint_table(conn, ds, VERSION, table, files)
    assert fp.content_digest == fresh.digest and fp.rows == 5


def scipy_stats_state() -> str:
    """In the judging process: whether `scipy.stats` has executed ("loaded") or not yet."""
    module = sys.modules.get("scipy.stats")
    if module is None:
        return "absent"
    return "lazy" if type(module).__name__ == "_LazyModule" else "loaded"


KL = {
    "type": "expect_column_kl_divergence_to_be_less_than",
    "column": "lifeExp",
    "partition_object": {"bins": [0, 40, 70], "weights": [0.5, 0.5]},
    "threshold": 0.6,
}


def test_the_judging_process_loads_scipy_stats_only_for_an_expectation_that_uses_it(tmp_path, db):
    ds = gapminder(expectations=[EXPECTATIONS[0], KL])
    with psycopg.connect(db.uri, autocommit=True) as conn:
        stage(conn, tmp_path, ds)
    if judge._pool is not None:  # a judging process of its own, fresh from its imports
        judge._pool.shutdown()
        judge._pool = None
    judge.prepare()
    assert judge._pool is not None
    assert judge._pool.submit(scipy_stats_state).result(timeout=300) == "lazy"

    outcomes = judge.run_expectations(db.uri, ds, VERSION)

    assert judge._pool.submit(scipy_stats_state).result(timeout=60) == "loaded"
    # Two of the five lifetimes are under 40: KL(observed || declared) of (0.4, 0.6) against
    # (0.5, 0.5), computed here without scipy.
    kl = 0.4 * math.log(0.4 / 0.5) + 0.6 * math.log(0.6 / 0.5)
    assert [o.error for o in outcomes] == [None, None]
    assert [o.success for o in outcomes] == [True, True]
    assert outcomes[1].observed == pytest.approx(kl, rel=1e-9)
