"""A Dagster webserver started as a user starts it (a subprocess of a command line), asked
through its GraphQL API, then stopped with the interrupt a terminal sends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webserver:
    def __init__(self, url: str, process: subprocess.Popen, log: Path):
        self.url = url
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def asset_keys(self) -> set[str]:
        """The asset keys of the loaded code location, once it has loaded (waits for it)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            nodes = self.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
            if nodes or time.monotonic() > deadline:
                return {"/".join(n["assetKey"]["path"]) for n in nodes}
            time.sleep(1)

    def runs(self) -> list[dict]:
        data = self.graphql(
            "{ runsOrError { ... on Runs { results { runId status jobName"
            " tags { key value } } } } }"
        )
        return data["runsOrError"]["results"]


def child_env(**values: str) -> dict[str, str]:
    """The environment of a command run by a user of this checkout: no DAGSTER_HOME unless given."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(values)
    return env


@contextmanager
def webserver(
    command: Sequence[str], port: int, env: dict[str, str], cwd: Path, log: Path
) -> Iterator[Webserver]:
    """Start `command` (which serves on `port`), wait until `/server_info` answers, yield, then
    interrupt it and wait for it (and the processes it started) to end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    server = Webserver(url, process, log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            code = process.poll()
            assert code is None, f"exited {code}:\n{server.output()[-3000:]}"
            try:
                if requests.get(f"{url}/server_info", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, server.output()[-3000:]
            time.sleep(1)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
