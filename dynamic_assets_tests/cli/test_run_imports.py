"""A `run` that ingests holds in its process what ingesting needs (the Dagster shell, pyarrow,
the database driver), never matplotlib, scikit-learn, MLflow nor Great Expectations (whose own
process judges the version): each is megabytes of resident memory that no row of the run uses.
(pandas loads anyway: pyarrow imports it at its first `pa.array`.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from dynamic_assets.demo.seed import seed_drive
from dynamic_assets_tests.cli.test_empty_run import env

WATCHED = ("dagster", "matplotlib", "PIL", "sklearn", "mlflow", "great_expectations", "scipy")

# `dynamic-assets` in this process, then which of WATCHED it loaded, as JSON on the last line.
WRAPPER = f"""
import json, sys
from dynamic_assets.cli import main
try:
    main(sys.argv[1:], prog_name="dynamic-assets")
except SystemExit as exit:
    code = exit.code or 0
else:
    code = 0
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {set(WATCHED)!r})
print(json.dumps({{"exit": code, "loaded": loaded}}))
"""


def test_a_run_that_curates_a_version_never_imports_what_only_training_or_reports_use(
    tmp_path, db_url
):
    seed_drive(tmp_path / "drive")
    for folder in (tmp_path / "drive" / "datasets").glob("*/*"):
        if folder.name != "2024-06-01":  # one market version is enough
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
    assert "2024-06-01" in output and "curated" in output, output
    assert seen["loaded"] == ["dagster"], output
