"""`dynamic-assets onedrive`: sign in once for delegated access, and check the connection."""

from __future__ import annotations

import sys

import click
from rich.console import Console

from dynamic_assets.settings import Settings

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False)


def _onedrive_settings():
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        err.print(f"[red]OneDrive settings:[/] {exc}")
        sys.exit(2)
    if settings.onedrive is None:
        err.print(
            "[red]OneDrive is not configured:[/] set ONEDRIVE_TENANT_ID and ONEDRIVE_CLIENT_ID "
            "(see .env.example); without them the pipeline uses the local drive folder."
        )
        sys.exit(2)
    return settings


@click.group("onedrive")
def onedrive() -> None:
    """Sign in to the team's OneDrive (Microsoft Graph) and check the connection."""


@onedrive.command()
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=("Files.Read.All",),
    show_default=True,
    help="Delegated Graph permission to ask for (repeat the option for several); "
    "Files.ReadWrite.All lets the pipeline also write checkpoints and reports.",
)
def login(scopes: tuple[str, ...]) -> None:
    """Sign in with the device-code flow and keep the token cache under DYNAMIC_ASSETS_HOME.

    Run it once; later runs refresh the access token silently and never prompt. The cache file
    holds a refresh token: it is written readable by its owner only.
    """
    from dynamic_assets.drive.graph.auth import AuthError, DeviceCodeLogin

    od = _onedrive_settings().onedrive
    provider = DeviceCodeLogin(
        od.tenant_id,
        od.client_id,
        od.token_cache,
        authority_host=od.authority_host,
        graph_url=od.graph_url,
        scopes=scopes,
        graph_scope=od.graph_scope,
    )
    try:
        user = provider.login(show=lambda message: console.print(message, markup=False))
    except AuthError as exc:
        err.print(f"[red]sign-in failed:[/] {exc}", markup=True)
        sys.exit(1)
    console.print(f"Signed in as {user}. Token cache: {od.token_cache} (owner-only).", markup=False)
    if od.client_secret_set:
        console.print(
            "Note: ONEDRIVE_CLIENT_SECRET is set, so the pipeline uses app-only access; "
            "unset it to use this sign-in.",
            markup=False,
        )


@onedrive.command()
def status() -> None:
    """Which drive and access the pipeline uses, and whether the drive answers."""
    from dynamic_assets.defs.resources import Resources
    from dynamic_assets.drive.graph import GraphError
    from dynamic_assets.drive.graph.auth import AuthError

    settings = _onedrive_settings()
    od = settings.onedrive
    drive = Resources.from_settings(settings).drive.get()
    console.print(drive.describe(), markup=False)
    console.print(f"access: {od.auth}", markup=False)
    try:
        root = drive.stat("")
        datasets = sum(
            1 for i in drive.list_tree("datasets") if i.is_folder and i.path.count("/") == 1
        )
    except (AuthError, GraphError) as exc:
        err.print(f"[red]the drive does not answer:[/] {exc}")
        sys.exit(1)
    console.print(
        f"reachable: /{od.root} (item {root.item_id}), {datasets} dataset folder(s)", markup=False
    )
