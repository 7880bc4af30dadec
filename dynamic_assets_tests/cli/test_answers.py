"""Answers that say what is true: an unknown dataset is an error naming the declared ones, and a
usage error comes before anything starts."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets_tests.cli.test_errors import UNREACHABLE, _env

DECLARED = "the declared datasets are market, corpus, embeddings"


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--dataset", "nosuchset"],
        ["verify", "nosuchset", "2024-06-01"],
        ["lineage", "nosuchset", "2024-06-01"],
    ],
)
def test_an_unknown_dataset_is_an_error_naming_the_declared_ones(tmp_path, args):
    (tmp_path / "drive").mkdir()
    result = CliRunner().invoke(main, args, env=_env(tmp_path, UNREACHABLE))
    assert result.stderr == f"Error: dataset 'nosuchset' is not declared: {DECLARED}\n"
    assert result.exit_code == 2


def test_version_without_dataset_is_a_usage_error_before_anything_is_read(tmp_path):
    config = tmp_path / "decls.yaml"
    config.write_text("datasets: [{name: 1}]\n", encoding="utf-8")  # never read
    result = CliRunner().invoke(
        main, ["run", "--version", "2024-06-01"], env=_env(tmp_path, UNREACHABLE, config)
    )
    assert result.stderr.splitlines()[-1] == "Error: --version needs --dataset"
    assert result.exit_code == 2
