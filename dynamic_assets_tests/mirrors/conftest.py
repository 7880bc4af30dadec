"""A moto S3 server on 127.0.0.1 per test, the demo declarations with a `spaces` platform on it,
and its credentials in the environment."""

from __future__ import annotations

import pytest
import yaml

from dynamic_assets.declarations.model import DEMO_CONFIG, Declarations
from dynamic_assets_tests.support.s3_server import s3_server

BUCKET = "ai-project"


@pytest.fixture
def s3():
    with s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
def mirror_decls(s3, monkeypatch) -> Declarations:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["platforms"] = {
        "spaces": {
            "kind": "s3",
            "endpoint_url": s3.url,
            "bucket": BUCKET,
            "prefix": "datasets",
            "region": "us-east-1",
        },
    }
    monkeypatch.setenv("SPACES_ACCESS_KEY_ID", "spaces-key")
    monkeypatch.setenv("SPACES_SECRET_ACCESS_KEY", "spaces-secret-value")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return Declarations.model_validate(raw)
