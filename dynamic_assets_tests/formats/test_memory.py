"""The copies' memory settings: glibc's threshold for mapping large blocks is fixed unless the
environment already sets it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHILD = "from dynamic_assets.formats.memory import map_large_blocks; print(map_large_blocks())"


@pytest.mark.parametrize(
    ("environ", "made"), [({}, "True"), ({"MALLOC_MMAP_THRESHOLD_": "65536"}, "False")]
)
def test_large_blocks_are_mapped_unless_the_environment_says_otherwise(environ, made):
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env={**env, **environ}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == made
