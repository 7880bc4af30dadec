"""`dynamic-assets`: one click group; each command area is a module of this package.

seed (demo drive), run (the pipeline headless), dev (the Dagster UI on the home's instance),
status (dataset health), declare (a dataset from samples), onedrive (sign-in and connection), provenance (verify, lineage, attest) and training
(checkpoints); the consoles they print with are in `console`.
"""

from __future__ import annotations

import click

from dynamic_assets.cli import declare, dev, onedrive, provenance, run, seed, status, training


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
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
):
    main.add_command(command)
