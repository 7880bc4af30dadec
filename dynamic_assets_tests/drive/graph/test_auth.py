"""Delegated sign-in (device code, token cache file), the `onedrive` commands, and settings."""

from __future__ import annotations

import json
import stat

import dagster as dg
import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.defs.resources import build_resources
from dynamic_assets.drive.graph import GraphDrive
from dynamic_assets.drive.graph.auth import AuthError, DeviceCodeLogin
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.graph_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    DRIVE_ID,
    TENANT,
    USER,
    serve,
)

ROOT = "DynamicCapital/ai-training"


@pytest.fixture
def server(tmp_path, monkeypatch):
    with serve(tmp_path, monkeypatch) as srv:
        srv.drive.put(f"{ROOT}/datasets/market/2024-06-01/a.csv", b"x\n1\n")
        yield srv


def login(server, cache) -> DeviceCodeLogin:
    return DeviceCodeLogin(
        TENANT, CLIENT_ID, cache, authority_host=server.url, graph_url=server.graph_url
    )


def test_device_code_sign_in_once_then_silent_refresh(server, tmp_path):
    cache = tmp_path / "home" / "msal_token_cache.json"
    shown: list[str] = []
    assert login(server, cache).login(show=shown.append) == USER
    assert "GRPH-TEST" in shown[0]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert json.loads(cache.read_text())["RefreshToken"]
    assert server.token_grants == ["urn:ietf:params:oauth:grant-type:device_code"]

    # A later run (a new process) reads the cache: no prompt, no token request while it is valid.
    later = login(server, cache)
    drive = GraphDrive(later, root=ROOT, graph_url=server.graph_url, sleep=lambda s: None)
    assert drive.stat("datasets/market/2024-06-01/a.csv").size == 4
    assert len(server.requests("POST", "/devicecode")) == 1
    assert server.token_grants == ["urn:ietf:params:oauth:grant-type:device_code"]
    assert server.requests("GET", "/me/drive/")  # delegated without a drive id: /me/drive

    # The access token expires: the refresh token gets a new one, silently, and is saved.
    server.expire_access_tokens()
    assert drive.stat("datasets/market").is_folder
    assert server.token_grants[-1] == "refresh_token"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert len(server.requests("POST", "/devicecode")) == 1


def test_not_signed_in_says_what_to_run(server, tmp_path):
    with pytest.raises(AuthError, match="dynamic-assets onedrive login"):
        login(server, tmp_path / "none.json").token()


def test_a_cache_readable_by_others_is_tightened(server, tmp_path):
    cache = tmp_path / "c.json"
    login(server, cache).login(show=lambda m: None)
    cache.chmod(0o644)
    login(server, cache).token()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def onedrive_env(monkeypatch, server, home, *, secret: bool) -> None:
    monkeypatch.setenv("DYNAMIC_ASSETS_HOME", str(home))
    monkeypatch.setenv("ONEDRIVE_TENANT_ID", TENANT)
    monkeypatch.setenv("ONEDRIVE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ONEDRIVE_GRAPH_URL", server.graph_url)
    monkeypatch.setenv("ONEDRIVE_AUTHORITY_HOST", server.url)
    if secret:
        monkeypatch.setenv("ONEDRIVE_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("ONEDRIVE_DRIVE_ID", DRIVE_ID)
    else:
        monkeypatch.delenv("ONEDRIVE_CLIENT_SECRET", raising=False)
        monkeypatch.delenv("ONEDRIVE_DRIVE_ID", raising=False)


def test_cli_login_and_status(server, tmp_path, monkeypatch):
    home = tmp_path / "home"
    onedrive_env(monkeypatch, server, home, secret=False)
    result = CliRunner().invoke(main, ["onedrive", "login"])
    assert result.exit_code == 0, result.output
    assert "GRPH-TEST" in result.output and f"Signed in as {USER}" in result.output
    cache = home / "msal_token_cache.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    status = CliRunner().invoke(main, ["onedrive", "status"])
    assert status.exit_code == 0, status.output
    assert "access: delegated" in status.output and "1 dataset folder(s)" in status.output


def test_cli_status_names_a_refused_secret(server, tmp_path, monkeypatch):
    onedrive_env(monkeypatch, server, tmp_path / "home", secret=True)
    monkeypatch.setenv("ONEDRIVE_CLIENT_SECRET", "not-the-secret")
    result = CliRunner().invoke(main, ["onedrive", "status"])
    assert result.exit_code == 1
    assert "invalid_client" in result.output and "not-the-secret" not in result.output


def test_settings_switch_the_drive_to_graph_without_holding_the_secret(tmp_path):
    env = {
        "DYNAMIC_ASSETS_HOME": str(tmp_path),
        "ONEDRIVE_TENANT_ID": TENANT,
        "ONEDRIVE_CLIENT_ID": CLIENT_ID,
        "ONEDRIVE_CLIENT_SECRET": CLIENT_SECRET,
        "ONEDRIVE_DRIVE_ID": DRIVE_ID,
    }
    settings = Settings.from_env(env)
    od = settings.onedrive
    assert od.root == "DynamicCapital/ai-training"
    assert od.graph_url == "https://graph.microsoft.com/v1.0"
    assert od.authority_host == "https://login.microsoftonline.com"
    assert od.auth == "app-only" and od.token_cache == tmp_path / "msal_token_cache.json"
    assert CLIENT_SECRET not in repr(settings)
    drive = build_resources(settings)["drive"]
    assert drive.kind == "onedrive" and isinstance(drive.client_secret, dg.EnvVar)
    assert Settings.from_env({"DYNAMIC_ASSETS_HOME": str(tmp_path)}).onedrive is None
    with pytest.raises(ValueError, match="ONEDRIVE_TENANT_ID"):
        Settings.from_env({"ONEDRIVE_CLIENT_ID": CLIENT_ID})
    with pytest.raises(ValueError, match="ONEDRIVE_DRIVE_ID or ONEDRIVE_USER"):
        Settings.from_env({k: v for k, v in env.items() if k != "ONEDRIVE_DRIVE_ID"})
