"""`dynamic-assets seed`: create a demo drive."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from dynamic_assets.cli.console import console, print_titled
from dynamic_assets.settings import Settings


@click.command()
@click.option("--scale", default=1, show_default=True, help="Multiply the demo row counts.")
@click.option(
    "--drive",
    "drive_root",
    type=click.Path(path_type=Path),
    help="Drive root (default: DYNAMIC_ASSETS_DRIVE).",
)
def seed(scale: int, drive_root: Path | None) -> None:
    """Create a demo drive: several datasets, two versions each, CSV, JSON Lines and Parquet."""
    from dynamic_assets.demo.seed import seed_drive

    settings = Settings.from_env()
    root = drive_root or settings.drive_root
    files = seed_drive(root, scale=scale)
    table = Table()
    for name in ("dataset", "version", "file", "rows", "bytes"):
        table.add_column(name, justify="right" if name in ("rows", "bytes") else "left")
    for f in files:
        table.add_row(
            f.dataset, f.version, f.path.rsplit("/", 1)[-1], f"{f.rows:,}", f"{f.bytes:,}"
        )
    print_titled(f"Demo drive at {root}", table)
    console.print(f"Declarations: {settings.config_path}")
