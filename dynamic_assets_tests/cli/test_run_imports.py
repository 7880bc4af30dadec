"""A `run` that ingests holds in its process what ingesting needs (the Dagster shell, pyarrow,
the database driver), never matplotlib, scikit-learn, MLflow nor Great Expectations (whose own
process judges the version): each is megabytes of resident memory that no row of the run uses.
pandas is among them: pyarrow imports it at its first `pa.array` or Python scalar, about 30-50 MB
of a run's peak."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from dynamic_assets.demo.seed import seed_drive
from dynamic_assets_tests.cli.test_empty_run import env

WATCHED = (
    "dagster",
    "pandas",
    "matplotlib",
    "PIL",
    "sklearn",
    "mlflow",
    "great_expectations",
    "scipy",
)

# `dynamic-assets` in this process, then which of WATCHED it loaded, as JSON on the last line,
# with where each was first imported from (the last frames of the importing code).
WRAPPER = f"""
import json, sys, traceback
first = {{}}

class Watch:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in {set(WATCHED)!r} and top not in first:
            stack = [f for f in traceback.extract_stack() if "importlib" not in f.filename]
            first[top] = [f"{{f.filename}}:{{f.lineno}}" for f in stack[-6:-1]]
        return None

sys.meta_path.insert(0, Watch())
from dynamic_assets.cli import main
try:
    main(sys.argv[1:], prog_name="dynamic-assets")
except SystemExit as exit:
    code = exit.code or 0
else:
    code = 0
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {set(WATCHED)!r})
print(json.dumps({{"exit": code, "loaded": loaded, "first": first}}))
"""


def test_a_run_that_curates_a_version_never_imports_what_only_training_or_reports_use(
    tmp_path, db_url
):
    seed_drive(tmp_path / "drive")
    for folder in (tmp_path / "drive" / "datasets").glob("*/*"):
        if folder.name not in ("2024-06-01", "v1.1", "v2.3"):  # one version of each format
            shutil.rmtree(folder)

    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, "run", "--no-train"],
        env={**os.environ, **env(tmp_path, db_url), "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    *lines, last = done.stdout.strip().splitlines()
    output, seen = "\n".join(lines) + done.stderr, json.loads(last)
    assert seen["exit"] == 0, output
    curated = {tuple(line.split("│")[1:3]) for line in lines if line.rstrip().endswith("curated │")}
    assert {(d.strip(), v.strip()) for d, v in curated} == {  # CSV; JSON Lines and JSON; Parquet
        ("market", "2024-06-01"),
        ("corpus", "v1.1"),
        ("embeddings", "v2.3"),
    }, output
    unexpected = {k: v for k, v in seen["first"].items() if k != "dagster"}
    assert seen["loaded"] == ["dagster"], unexpected
