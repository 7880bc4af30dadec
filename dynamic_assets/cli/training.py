"""`dynamic-assets checkpoints`: an auditor's read-only check of every checkpoint folder in the
drive (training itself runs in `dynamic-assets run`)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

import click
from rich.table import Table

from dynamic_assets.cli.console import console, print_titled
from dynamic_assets.settings import Settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="List traceable checkpoints too.")
def checkpoints(as_json: bool, show_all: bool) -> None:
    """Check every checkpoint folder in the drive's model-checkpoints/ (read-only).

    A checkpoint is traceable when its metadata.json is valid, its weights are in the folder,
    and the fingerprint it names is one the registry knows for that dataset version. Exits 1
    if any folder cannot be traced to curated data.
    """
    from dynamic_assets.defs.resources import Resources
    from dynamic_assets.read.curated import default_database
    from dynamic_assets.training.audit import inspect_folder, scan_checkpoints

    settings = Settings.from_env()
    drive = Resources.from_settings(settings).drive.get()
    folders, stray = scan_checkpoints(drive)
    rows: list[dict[str, Any]] = []
    with default_database(settings).connect() as conn:
        for folder in folders:
            verdict = inspect_folder(drive, conn, folder, grace=timedelta(0))
            assert verdict is not None  # no grace: every folder gets a verdict
            meta = verdict.metadata
            rows.append(
                {
                    "path": folder.path,
                    "status": verdict.status,
                    "traceable": verdict.traceable,
                    "dataset": meta.dataset if meta else None,
                    "dataset_version": meta.dataset_version if meta else None,
                    "data_fingerprint": meta.data_fingerprint if meta else None,
                    "fingerprint_known_as": verdict.known_as,
                    "problem": verdict.problem,
                }
            )
    rows.extend(
        {"path": p, "status": "stray_file", "traceable": False, "problem": "not in a run folder"}
        for p in stray
    )
    bad = [r for r in rows if not r["traceable"]]
    if as_json:
        click.echo(json.dumps(rows if show_all else bad, indent=2))
    else:
        table = Table()
        for name in ("checkpoint", "status", "trained on", "problem"):
            table.add_column(name)
        listed = rows if show_all else bad
        for r in listed:
            on = (
                f"{r['dataset']} {r['dataset_version']} {r['data_fingerprint'][:12]}…"
                if r.get("data_fingerprint")
                else "-"
            )
            style = "green" if r["traceable"] else "red"
            table.add_row(r["path"], f"[{style}]{r['status']}[/]", on, r.get("problem") or "")
        if listed:
            print_titled(f"checkpoints in {drive.describe()}", table)
        console.print(f"{len(rows) - len(bad)} traceable, {len(bad)} not traceable to curated data")
    if bad:
        sys.exit(1)
