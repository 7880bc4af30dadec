"""A real S3-API server on 127.0.0.1 for the mirror tests: moto's, in a thread of the test process.

`S3Server` serves moto's backends on an ephemeral port, logs every request it answers
(method, path, query) so that a test can count uploads, can answer the next N uploads with
`503 SlowDown`, can refuse the upload of one part of a multipart upload (an interruption
mid-upload), and can enforce credentials: `require_keys()` creates an IAM user with an access
key and a policy allowing S3, then turns moto's request authentication on, so any other key is
refused.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import boto3
import requests
from moto.moto_server import werkzeug_app as moto_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

REGION = "us-east-1"


@dataclass
class RequestLog:
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    slow_down: int = 0
    fail_part: int = 0  # the next upload of this part number is refused once (400), unretried
    lock: threading.Lock = field(default_factory=threading.Lock)

    def uploads(self) -> list[str]:
        """The paths of PUT and POST requests on objects (part uploads included)."""
        with self.lock:
            return [p for m, p, _ in self.requests if m in ("PUT", "POST")]


class S3Server(ThreadedMotoServer):
    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.log = RequestLog()

    def _server_entry(self) -> None:
        app = moto_app.DomainDispatcherApplication(moto_app.create_backend_app)
        log = self.log

        def logged(environ, start_response):
            method = environ["REQUEST_METHOD"]
            path = environ.get("PATH_INFO", "")
            with log.lock:
                log.requests.append((method, path, environ.get("QUERY_STRING", "")))
                refuse = method == "PUT" and log.slow_down > 0 and not path.startswith("/moto-api")
                if refuse:
                    log.slow_down -= 1
                query = environ.get("QUERY_STRING", "")
                broken = (
                    method == "PUT"
                    and log.fail_part > 0
                    and (f"partNumber={log.fail_part}&" in query + "&")
                )
                if broken:
                    log.fail_part = 0
            if broken:
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                body = (
                    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InjectedFailure</Code>'
                    b"<Message>The connection broke mid-upload.</Message></Error>"
                )
                start_response(
                    "400 Bad Request",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
                )
                return [body]
            if refuse:
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                body = (
                    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                    b"<Message>Please reduce your request rate.</Message></Error>"
                )
                start_response(
                    "503 Slow Down",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
                )
                return [body]
            return app(environ, start_response)

        self._server = make_server(
            self._ip_address, self._port, logged, True, request_handler=moto_app.MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def client(self, key_id: str = "admin", secret: str = "admin-secret"):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def require_keys(self) -> tuple[str, str]:
        """An access key that may use S3; from now on every other key is refused."""
        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="admin",
            aws_secret_access_key="admin-secret",
        )
        iam.create_user(UserName="mirror")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="mirror", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="mirror")["AccessKey"]
        self._set_auth(0)
        return key["AccessKeyId"], key["SecretAccessKey"]

    def _set_auth(self, count: float) -> None:
        requests.post(
            f"{self.url}/moto-api/reset-auth", data=str(count).encode(), timeout=10
        ).raise_for_status()

    def stop(self) -> None:
        self._set_auth(float("inf"))
        super().stop()


@contextmanager
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    try:
        server.reset()
        yield server
    finally:
        server.stop()
