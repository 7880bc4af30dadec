"""Staging's memory: Arrow allocates from jemalloc returning freed pages at once, unless
`ARROW_DEFAULT_MEMORY_POOL` names a pool, and the staged rows are the same either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dynamic_assets.declarations.model import Dataset

CHILD = """
import json, sys
from pathlib import Path
import psycopg, pyarrow as pa
from dynamic_assets.datasets.staging import load_version
from dynamic_assets.declarations.model import Dataset
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.staging import recorded_source
ds = Dataset.model_validate(json.loads(sys.argv[3]))
local = write_file(Path(sys.argv[2]), "prices.csv", sys.argv[4])
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    load_version(conn, ds, "v1", [recorded_source(conn, ds, "v1", local)])
    rows = conn.execute(
        "SELECT symbol, price, _row FROM ai_raw.prices WHERE dataset_version = 'v1' ORDER BY _row"
    ).fetchall()
print(json.dumps({"pool": pa.default_memory_pool().backend_name, "rows": rows}))
"""

DS = Dataset.model_validate(
    {
        "name": "prices",
        "columns": [{"name": "symbol", "type": "string"}, {"name": "price", "type": "float"}],
    }
)
TEXT = 'symbol,price\nAAPL,1.5\n"a, ""quoted"" – 東京",NaN\n,\n'


@pytest.mark.parametrize(("chosen", "pool"), [(None, "jemalloc"), ("system", "system")])
def test_staging_allocates_from_jemalloc_unless_a_pool_is_chosen(tmp_path, db, chosen, pool):
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    done = subprocess.run(
        [sys.executable, "-c", CHILD, db.uri, str(tmp_path), DS.model_dump_json(), TEXT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["pool"] == pool
    assert seen["rows"] == [
        ["AAPL", "1.5", 1],
        ['a, "quoted" – 東京', "NaN", 2],
        [None, None, 3],
    ]
