"""Small texts a user reads: a table title holding a path is never broken inside the path, an
empty `checkpoints` listing is its count line alone, and a model's description reads as
English."""

from __future__ import annotations

from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.definitions import build_defs
from dynamic_assets.defs.training.keys import model_key
from dynamic_assets_tests.cli.test_cli import env


def test_a_table_title_keeps_its_path_on_one_line(tmp_path):
    root = tmp_path / ("a-drive-folder-with-a-long-name-" * 4) / "drive"
    result = CliRunner().invoke(
        main, ["seed", "--drive", str(root)], env={"DYNAMIC_ASSETS_HOME": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    assert f"Demo drive at {root}" in result.output.splitlines()


def test_checkpoints_of_a_drive_without_any_prints_the_count_alone(tmp_path, db_url):
    (tmp_path / "drive").mkdir()
    result = CliRunner().invoke(main, ["checkpoints"], env=env(tmp_path, db_url))
    assert result.exit_code == 0, result.output
    assert result.output == "0 traceable, 0 not traceable to curated data\n"


def test_model_descriptions_name_the_versions_in_english():
    decls = load_declarations(DEMO_CONFIG)
    defs = build_defs(decls=decls)
    graph = defs.resolve_asset_graph()
    for model in decls.models:
        text = graph.get(model_key(model.name)).description or ""
        assert "(every versions)" not in text and "(latest version)" not in text
        wanted = "(every version)" if model.versions == "every" else "(the latest version)"
        assert wanted in text, text
