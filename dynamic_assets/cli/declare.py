"""`dynamic-assets declare`: infer a dataset declaration from sample files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dynamic_assets.cli.console import console, err
from dynamic_assets.settings import Settings


@click.command()
@click.argument("name")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Sample file or folder.",
)
@click.option("--replace", is_flag=True, help="Replace an existing declaration of NAME.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Declarations file to write (default: DYNAMIC_ASSETS_CONFIG).",
)
def declare(name: str, source: Path, replace: bool, config_path: Path | None) -> None:
    """Infer a dataset declaration from sample files and write it into the configuration.

    A declarations file that does not exist yet is created. Without --config or
    DYNAMIC_ASSETS_CONFIG, ./dynamic_assets.yaml is written, starting from the declarations
    in use (the demo's, until that file exists).
    """
    from dynamic_assets.declarations.infer import add_to_declarations, infer_declaration
    from dynamic_assets.declarations.model import (
        DEMO_CONFIG,
        ConfigError,
        Declarations,
        dump_declarations,
        load_declarations,
        save_declarations,
    )

    settings = Settings.from_env()
    target = config_path or settings.writable_config_path
    named = config_path is not None or settings.config_path != DEMO_CONFIG
    try:
        if target.exists():
            decls = load_declarations(target)
        elif not named:
            decls = load_declarations(settings.config_path)
        else:
            decls = Declarations()
        inferred = infer_declaration(name, [source])
        dataset = inferred.dataset
        decls = add_to_declarations(decls, dataset, replace=replace)
    except (ValueError, ConfigError) as exc:
        err.print(f"[red]cannot declare {name}:[/] {exc}", highlight=False)
        sys.exit(2)
    save_declarations(decls, target)
    console.print(
        dump_declarations(Declarations(datasets=[dataset])), markup=False, highlight=False
    )
    for note in inferred.notes:
        console.print(note, markup=False, highlight=False)
    console.print(f"Declared [bold]{name}[/] in {target}")
