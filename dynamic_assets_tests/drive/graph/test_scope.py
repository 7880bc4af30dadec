"""The scope a Graph token is asked for: the resource of the Graph cloud, never the host the
requests go to (a gateway or a local server is not a resource Entra ID knows), and
ONEDRIVE_GRAPH_SCOPE when set. Checked at the token endpoint of the local identity server."""

from __future__ import annotations

import pytest

from dynamic_assets.defs.resources import build_resources
from dynamic_assets.drive.graph import GraphDrive
from dynamic_assets.drive.graph.auth import ClientCredentials, DeviceCodeLogin
from dynamic_assets.settings import Settings
from dynamic_assets_tests.drive.graph.test_auth import ROOT, onedrive_env
from dynamic_assets_tests.support.graph_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    DRIVE_ID,
    TENANT,
    serve,
)

NATIONAL_CLOUDS = {
    "https://graph.microsoft.com/v1.0": "https://graph.microsoft.com/.default",
    "https://graph.microsoft.us/v1.0": "https://graph.microsoft.us/.default",
    "https://dod-graph.microsoft.us/beta": "https://dod-graph.microsoft.us/.default",
    "https://microsoftgraph.chinacloudapi.cn/v1.0": "https://microsoftgraph.chinacloudapi.cn/.default",
}


@pytest.fixture
def server(tmp_path, monkeypatch):
    with serve(tmp_path, monkeypatch) as srv:
        srv.drive.put(f"{ROOT}/datasets/market/2024-06-01/a.csv", b"x\n1\n")
        yield srv


def test_a_graph_endpoint_on_another_host_asks_for_the_public_graph_scope(server):
    app_only = ClientCredentials(
        TENANT, CLIENT_ID, CLIENT_SECRET, authority_host=server.url, graph_url=server.graph_url
    )
    drive = GraphDrive(app_only, drive_id=DRIVE_ID, root=ROOT, graph_url=server.graph_url)
    drive.stat("datasets/market")

    assert server.token_scopes == ["https://graph.microsoft.com/.default"]


@pytest.mark.parametrize(("graph_url", "scope"), sorted(NATIONAL_CLOUDS.items()))
def test_a_national_cloud_asks_for_its_own_graph_resource(server, graph_url, scope):
    app_only = ClientCredentials(
        TENANT, CLIENT_ID, CLIENT_SECRET, authority_host=server.url, graph_url=graph_url
    )
    assert app_only.token()
    assert server.token_scopes == [scope]


def test_onedrive_graph_scope_overrides_the_scope(server, tmp_path, monkeypatch):
    onedrive_env(monkeypatch, server, tmp_path / "home", secret=True)
    monkeypatch.setenv("ONEDRIVE_GRAPH_SCOPE", "api://graph-gateway/.default")
    settings = Settings.from_env()
    assert settings.onedrive.graph_scope == "api://graph-gateway/.default"

    drive = build_resources(settings)["drive"].get()
    assert drive.stat("datasets/market/2024-06-01/a.csv").size == 4

    assert server.token_scopes == ["api://graph-gateway/.default"]


def test_delegated_sign_in_asks_for_the_same_resource(server, tmp_path):
    def scopes_of(**kwargs) -> list[str]:
        server.token_scopes.clear()
        login = DeviceCodeLogin(
            TENANT, CLIENT_ID, tmp_path / "c.json", authority_host=server.url, **kwargs
        )
        login.login(show=lambda message: None)
        return sorted(set(server.token_scopes[0].split()) - {"offline_access", "openid", "profile"})

    assert scopes_of(graph_url=server.graph_url) == ["https://graph.microsoft.com/Files.Read.All"]
    assert scopes_of(graph_url="https://graph.microsoft.us/v1.0") == [
        "https://graph.microsoft.us/Files.Read.All"
    ]
    assert scopes_of(graph_url=server.graph_url, graph_scope="api://graph-gateway/.default") == [
        "api://graph-gateway/Files.Read.All"
    ]
