"""`dynamic-assets dev`: the Dagster UI (`dagster dev`) on the home's Dagster instance, the one
`dynamic-assets run` writes to, so that runs started from either are one history and queue in one
run queue (`defs.headless.home_instance_folder`)."""

from __future__ import annotations

import os
import sys

import click

from dynamic_assets.cli.console import console
from dynamic_assets.settings import Settings

CODE_LOCATION = "dynamic_assets.definitions"
WORKSPACE_OPTIONS = ("-w", "--workspace", "-f", "--python-file", "-m", "--module-name")


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def dev(ctx: click.Context) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on this home's Dagster instance,
    `$DYNAMIC_ASSETS_HOME/dagster`; any other arguments (`--port 3001`, `-h`) go to `dagster dev`.

    The instance queues runs, DYNAMIC_ASSETS_MAX_CONCURRENT_RUNS at once (the machine's CPUs
    unless set); its storage is sqlite in that folder. For the production instance (Postgres),
    run `dagster dev` with DAGSTER_HOME pointing at a folder holding `deploy/dagster.yaml`."""
    from dynamic_assets.defs.headless import home_instance_folder

    settings = Settings.from_env()
    folder = home_instance_folder(settings)
    args = list(ctx.args)
    if not any(a.split("=", 1)[0] in WORKSPACE_OPTIONS for a in args):
        args = ["-m", CODE_LOCATION, *args]
    console.print(
        f"Dagster instance: {folder} (up to {settings.max_concurrent_runs} runs at once)",
        markup=False,
        highlight=False,
    )
    sys.stdout.flush()
    os.environ["DAGSTER_HOME"] = str(folder)
    os.execv(sys.executable, [sys.executable, "-m", "dagster", "dev", *args])
