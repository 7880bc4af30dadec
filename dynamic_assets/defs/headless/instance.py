"""The home's Dagster instance, shared by `dynamic-assets run` and `dynamic-assets dev`, and the
file each `dynamic-assets run` writes Dagster's log to."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from dynamic_assets.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

# Dagster's console log of a run, at INFO: `dynamic-assets run` sends it to a file (`run_log_path`).
LOGGING = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_log_path(settings: Settings) -> Path:
    """A new file for Dagster's log of one `dynamic-assets run`:
    `<home>/logs/run-<UTC time>-<process id>.log`."""
    folder = settings.home / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"run-{stamp}-{os.getpid()}.log"


# The settings of the home's instance, written into `<home>/dagster/dagster.yaml`; `dynamic-assets
# dev` runs `dagster dev` with DAGSTER_HOME set to that folder, so that the UI and `dynamic-assets
# run` share one history and one run queue. Its storage is sqlite in the folder (Dagster's
# default). The queue starts `max_concurrent_runs` runs at once (the machine's CPUs unless set),
# one at a time per dataset version (`VERSION_TAG`), and pools count per run.
HOME_INSTANCE_YAML = """\
# The Dagster instance of this dynamic-assets home, shared by `dynamic-assets run` and by
# `dynamic-assets dev` (`dagster dev` with DAGSTER_HOME set to this folder). Storage: sqlite in
# this folder. Rewritten from DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS by both commands.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: {max_concurrent_runs}
    tag_concurrency_limits:
      - key: {version_tag}
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    granularity: run
telemetry:
  enabled: false
"""


def home_instance_yaml(settings: Settings) -> str:
    """The `dagster.yaml` of the home's instance for these settings."""
    from dynamic_assets.defs.datasets.assets import VERSION_TAG

    return HOME_INSTANCE_YAML.format(
        max_concurrent_runs=settings.max_concurrent_runs, version_tag=VERSION_TAG
    )


def home_instance_folder(settings: Settings) -> Path:
    """`<home>/dagster`, its `dagster.yaml` written (or rewritten when the settings changed).

    Processes preparing it at once take turns (a lock file in the folder); the file is replaced
    whole, so a reader never sees half of it."""
    folder = settings.home / "dagster"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = home_instance_yaml(settings)
    with FileLock(folder / ".instance.lock"):
        config = folder / "dagster.yaml"
        if not config.exists() or config.read_text(encoding="utf-8") != wanted:
            written = folder / "dagster.yaml.new"
            written.write_text(wanted, encoding="utf-8")
            written.replace(config)
    return folder


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME when set (shared with `dagster dev`), else the home's own
    under `<home>/dagster` (`home_instance_folder`), the one `dynamic-assets dev` serves.

    Processes opening the home's instance at once take turns (a lock file in the folder), so
    that only one of them creates its sqlite storage."""
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    folder = home_instance_folder(settings)
    with FileLock(folder / ".instance.lock"):
        return dg.DagsterInstance.local_temp(str(folder))
