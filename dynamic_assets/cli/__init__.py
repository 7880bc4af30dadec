"""`dynamic-assets`: one click group; each command area is a module of this package.

seed (demo drive), run (the pipeline headless), dev (the Dagster UI on the home's instance),
status (dataset health), declare (a dataset from samples), onedrive (sign-in and connection),
provenance (verify, lineage, attest), training
(checkpoints) and report (the weekly review); the consoles they print with are in `console`.

Every command runs inside one error boundary (`errors.Cli.invoke`): an error is one message saying
what failed, why and what to do, with exit status 2 for configuration and usage, 1 for anything
else; `--debug` (or DYNAMIC_ASSETS_DEBUG=1) lets the traceback through instead.
"""

from __future__ import annotations

import click

from dynamic_assets.cli import (
    declare,
    dev,
    lifecycle,
    onedrive,
    pointers,
    provenance,
    report,
    run,
    seed,
    status,
    training,
)
from dynamic_assets.cli.errors import Cli


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--debug",
    is_flag=True,
    help="Show the traceback of an error (also DYNAMIC_ASSETS_DEBUG=1).",
)
def main(debug: bool) -> None:
    """Keep a training data platform in step with a team's OneDrive."""


for command in (
    seed.seed,
    run.run,
    dev.dev,
    status.status,
    declare.declare,
    onedrive.onedrive,
    provenance.verify,
    provenance.lineage,
    provenance.attest,
    training.checkpoints,
    report.report,
    *(lifecycle.lifecycle, lifecycle.tiers, lifecycle.restore),
    pointers.promote,
    pointers.rollback,
):
    main.add_command(command)
