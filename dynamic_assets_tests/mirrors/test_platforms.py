"""The `platforms:` section of the declarations file."""

from __future__ import annotations

import pytest
import yaml

from dynamic_assets.declarations.model import DEMO_CONFIG, ConfigError, load_declarations
from dynamic_assets.mirrors.s3 import credentials


def _write(tmp_path, platforms):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["platforms"] = platforms
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_issue_shape_is_declared(tmp_path):
    decls = load_declarations(
        _write(
            tmp_path,
            {
                "spaces": {
                    "kind": "s3",
                    "endpoint_url": "https://nyc3.digitaloceanspaces.com",
                    "bucket": "ai-project",
                    "prefix": "datasets",
                    "region": "nyc3",
                },
                "dvc": {"kind": "dvc", "repo_path": "../ai-project", "remote": "spaces"},
            },
        )
    )
    assert decls.platforms["spaces"].bucket == "ai-project"
    assert decls.platforms["dvc"].remote == "spaces"


def test_a_secret_in_the_yaml_is_refused_without_quoting_it(tmp_path):
    with pytest.raises(ConfigError) as refused:
        load_declarations(
            _write(
                tmp_path,
                {
                    "spaces": {
                        "kind": "s3",
                        "bucket": "ai-project",
                        "aws_secret_access_key": "hunter2-secret",
                    }
                },
            )
        )
    assert "credentials are never declared" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_a_dvc_remote_must_be_a_declared_s3_platform(tmp_path):
    with pytest.raises(ConfigError, match="remote 'nowhere' is not a declared s3 platform"):
        load_declarations(
            _write(tmp_path, {"dvc": {"kind": "dvc", "repo_path": ".", "remote": "nowhere"}})
        )


def test_credentials_come_from_the_platform_variables_then_aws():
    both = {
        "SPACES_ACCESS_KEY_ID": "k1",
        "SPACES_SECRET_ACCESS_KEY": "s1",
        "AWS_ACCESS_KEY_ID": "k2",
        "AWS_SECRET_ACCESS_KEY": "s2",
    }
    assert credentials("spaces", both).key_id == "k1"
    assert credentials("other", both).key_id == "k2"
    assert credentials("spaces", {}) is None
    assert "s1" not in repr(credentials("spaces", both))
