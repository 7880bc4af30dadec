"""`dynamic-assets report`: the weekly review written into the drive's reports/ folder."""

from __future__ import annotations

import re
import webbrowser
from contextlib import ExitStack
from datetime import timedelta

import click

from dynamic_assets.settings import Settings

_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_window(text: str) -> timedelta:
    """`7d`, `36h`, `2w`: a window of hours, days or weeks."""
    m = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text or "")
    if not m or int(m.group(1)) == 0:
        raise click.BadParameter(f"{text!r}: use a number and h, d or w (e.g. 7d, 36h, 2w)")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def home_instance(settings: Settings, stack: ExitStack):
    """The Dagster instance the sensors tick on (DAGSTER_HOME's, else the home's under
    `<home>/dagster` when `dynamic-assets dev` or `run` made it), or None and why there is none."""
    import os

    from dynamic_assets.defs.headless import dagster_instance

    folder = settings.home / "dagster"
    if not os.environ.get("DAGSTER_HOME") and not (folder / "dagster.yaml").exists():
        return None, f"no Dagster instance at {folder}; the sensors tick under `dynamic-assets dev`"
    return stack.enter_context(dagster_instance(settings)), ""


@click.command()
@click.option(
    "--since", "window", default="7d", show_default=True, help="The window: 36h, 7d, 2w, ..."
)
@click.option("--open", "open_", is_flag=True, help="Open the HTML page (a local drive only).")
def report(window: str, open_: bool) -> None:
    """Write the weekly review (an HTML page with charts and a Markdown summary) into the
    drive's reports/ folder, print the paths it wrote, and send the signed weekly_review alert
    when webhooks are configured."""
    from dynamic_assets.alerts.endpoints import WebhookConfigError
    from dynamic_assets.declarations.model import load_declarations
    from dynamic_assets.defs.alerts.resources import build_webhook_resource
    from dynamic_assets.defs.reports.assets import DRIVE_SENSORS
    from dynamic_assets.defs.resources import Resources
    from dynamic_assets.read.curated import default_database
    from dynamic_assets.reports import announce, write_review

    span = parse_window(window)
    settings = Settings.from_env()
    decls = load_declarations(settings.config_path)
    drive = Resources.from_settings(settings).drive.get()
    try:
        config = build_webhook_resource(settings).config()
    except WebhookConfigError as exc:
        raise click.ClickException(f"webhooks: {exc}") from None
    db = default_database(settings)
    with ExitStack() as stack:
        instance, why = home_instance(settings, stack)
        review = write_review(
            db, drive, decls, window=span, instance=instance, watched=DRIVE_SENSORS, no_instance=why
        )
    click.echo(review.html_path)
    click.echo(review.markdown_path)
    if config is not None:
        click.echo(f"weekly_review alert: {announce(db, config, review)}", err=True)
    if open_:
        if drive.kind == "local":
            webbrowser.open((settings.drive_root / review.html_path).as_uri())
        else:
            click.echo("--open: the report is in OneDrive; open it there", err=True)
