"""The code location on OneDrive in tests, against the local Graph server of `graph_server`: the
drive root the demo is copied under, the `ONEDRIVE_*` settings that point the code location at
that server, and a Graph drive client on it."""

from __future__ import annotations

import pytest

from dynamic_assets.drive.graph import GraphDrive
from dynamic_assets.drive.graph.auth import ClientCredentials
from dynamic_assets_tests.support.graph_server import CLIENT_ID, CLIENT_SECRET, DRIVE_ID, TENANT

ROOT = "DynamicCapital/ai-training"


def onedrive_env(srv) -> dict[str, str]:
    """The `ONEDRIVE_*` settings that switch the code location's drive to the server `srv`."""
    return {
        "ONEDRIVE_TENANT_ID": TENANT,
        "ONEDRIVE_CLIENT_ID": CLIENT_ID,
        "ONEDRIVE_CLIENT_SECRET": CLIENT_SECRET,
        "ONEDRIVE_DRIVE_ID": DRIVE_ID,
        "ONEDRIVE_GRAPH_URL": srv.graph_url,
        "ONEDRIVE_AUTHORITY_HOST": srv.url,
    }


def set_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """`env` set, and the settings that would choose another drive or root removed."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("DYNAMIC_ASSETS_DRIVE", "ONEDRIVE_ROOT", "ONEDRIVE_USER"):
        monkeypatch.delenv(name, raising=False)


def graph_drive(srv, root: str = ROOT) -> GraphDrive:
    """A Graph drive client on the server `srv`, signed in with the test app's credentials, that
    never sleeps between retries."""
    tokens = ClientCredentials(
        TENANT, CLIENT_ID, CLIENT_SECRET, authority_host=srv.url, graph_url=srv.graph_url
    )
    return GraphDrive(
        tokens, drive_id=DRIVE_ID, root=root, graph_url=srv.graph_url, sleep=lambda s: None
    )
