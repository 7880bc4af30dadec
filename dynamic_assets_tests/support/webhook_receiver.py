"""Webhook receivers on loopback for tests: one that verifies signatures (as the README tells
receivers to) and answers with scripted status codes, and one that accepts connections but never
answers (a hung endpoint)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from dynamic_assets.alerts import SIGNATURE_HEADER, SignatureError, verify_signature
from dynamic_assets_tests.support.servers import LoopbackServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request arrived
    verified: bool
    problem: str | None

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str
    url: str = ""
    script: list[int] = field(default_factory=list)  # status codes to answer, then 200
    retry_after: str | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict]:
        with self.lock:
            return [r.event for r in self.received if r.verified]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.01)
        with self.lock:
            return list(self.received)


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                verify_signature(receiver.secret, self.headers.get(SIGNATURE_HEADER), body)
                verified, problem = True, None
            except SignatureError as exc:
                verified, problem = False, str(exc)
            with receiver.lock:
                receiver.received.append(
                    Received(
                        self.path, dict(self.headers), body, time.monotonic(), verified, problem
                    )
                )
                status = receiver.script.pop(0) if receiver.script else 200
            if not verified:
                status = 400
            self.send_response(status)
            if receiver.retry_after and status in (429, 503):
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    return Handler


@contextlib.contextmanager
def receiver(
    secret: str, *, script: list[int] | None = None, path: str = "/hooks/dai"
) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 (an ephemeral port) for the duration of the block."""
    rec = Receiver(secret, script=list(script or []))
    with LoopbackServer(_handler(rec)) as server:
        rec.url = f"{server.url}{path}"
        yield rec


@contextlib.contextmanager
def hung_endpoint() -> Iterator[str]:
    """A URL whose server accepts the connection (the kernel completes it) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/never"
    finally:
        sock.close()


def closed_port_url() -> str:
    """A URL on loopback where nothing listens (connection refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/dead"
