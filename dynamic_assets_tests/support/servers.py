"""Threaded HTTP and HTTPS servers on 127.0.0.1 for the protocol fakes of the tests.

`LoopbackServer` serves a `BaseHTTPRequestHandler` class on an ephemeral port from a daemon
thread, as a context manager (or with `start()` / `stop()`). With `ca_file`, it speaks TLS with a
certificate for 127.0.0.1 and localhost from a `trustme` test CA (one per process: key generation
is the slow part) and writes that CA to `ca_file`; the TLS handshake runs in the request's thread,
so one stalled client does not hold up the others. `trusting` runs such a server for a test with
requests (and MSAL) trusting only its CA.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self, TypeVar

import pytest
import trustme

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
"""The variables requests, curl and OpenSSL read the CA bundle from."""

POLL_INTERVAL = 0.02  # seconds; how long `stop()` may wait for the serving loop to notice


@cache
def loopback_certificates() -> tuple[trustme.CA, trustme.LeafCert]:
    """The process's test CA and its certificate for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost")


class _Server(ThreadingHTTPServer):
    def finish_request(self, request, client_address) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


class LoopbackServer:
    """`handler` served on `url` (`http://127.0.0.1:<port>`, or `https://` with `ca_file`)."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, ca_file: Path | None = None
    ) -> None:
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.ca_path = ca_file
        scheme = "http"
        if ca_file is not None:
            ca, cert = loopback_certificates()
            ca.cert_pem.write_to_path(str(ca_file))
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(ctx)
            self.httpd.socket = ctx.wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False
            )
            scheme = "https"
        self.port = self.httpd.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def trust_ca(monkeypatch: pytest.MonkeyPatch, ca_file: Path) -> None:
    """Make requests, curl and OpenSSL trust only `ca_file` for the rest of the test.

    The machines export these variables, and requests lets them override a session's `verify`;
    pointing them at the test CA keeps TLS verification on."""
    for name in CA_BUNDLE_VARIABLES:
        monkeypatch.setenv(name, str(ca_file))


S = TypeVar("S", bound=LoopbackServer)


@contextlib.contextmanager
def trusting(server: S, monkeypatch: pytest.MonkeyPatch) -> Iterator[S]:
    """Run a TLS `server` for the block, with its CA the only one trusted."""
    assert server.ca_path is not None, "trusting() needs a server started with a ca_file"
    with server:
        trust_ca(monkeypatch, server.ca_path)
        yield server
