"""The storage plan and the per-dataset lifecycle policies, as written in the declarations file."""

import pytest
import yaml

from dynamic_assets.declarations.model import ConfigError, load_declarations

DATASET = {
    "name": "market",
    "columns": [{"name": "close", "type": "float"}],
}


def _load(tmp_path, data):
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_declarations(path)


def test_storage_plan_and_lifecycle_keys_as_written(tmp_path):
    decls = _load(
        tmp_path,
        {
            "storage": {
                "core": {"budget_mb": 500, "warn_at": 0.8, "critical_at": 0.9},
                "main": {"url_env": "MAIN_DB_URL"},
                "archive": {"folder": "archive"},
            },
            "datasets": [
                {
                    **DATASET,
                    "lifecycle": {
                        "hot_versions": 3,
                        "main_days": 365,
                        "archive_after_days": 1095,
                        "delete_after_days": 2555,
                        "legal_hold": False,
                    },
                }
            ],
        },
    )
    assert decls.storage.core.budget_mb == 500
    assert (decls.storage.core.warn_at, decls.storage.core.critical_at) == (0.8, 0.9)
    assert decls.storage.main is not None and decls.storage.main.url_env == "MAIN_DB_URL"
    assert decls.storage.archive.folder == "archive"
    policy = decls.dataset("market").lifecycle
    assert policy is not None
    assert (policy.hot_versions, policy.archive_after_days, policy.delete_after_days) == (
        3,
        1095,
        2555,
    )
    assert policy.legal_hold is False


def test_default_plan_is_a_core_and_an_archive(tmp_path):
    decls = _load(tmp_path, {"datasets": [DATASET]})
    assert decls.storage.core.budget_mb == 500
    assert decls.storage.archive.folder == "archive"
    assert decls.storage.main is None
    assert decls.dataset("market").lifecycle is None


@pytest.mark.parametrize(
    ("storage", "said"),
    [
        ({"core": {"budget_mb": 500, "warn_at": 0.9, "critical_at": 0.8}}, "warn_at"),
        ({"core": {"budget_mb": 0}}, "budget_mb"),
        ({"core": {"budget": 500}}, "budget"),
        ({"archive": {"folder": "../outside"}}, "folder"),
    ],
)
def test_bad_storage_plan_is_named(tmp_path, storage, said):
    with pytest.raises(ConfigError, match=said):
        _load(tmp_path, {"storage": storage, "datasets": [DATASET]})


def test_delete_before_archive_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="delete_after_days"):
        _load(
            tmp_path,
            {
                "datasets": [
                    {**DATASET, "lifecycle": {"archive_after_days": 100, "delete_after_days": 50}}
                ]
            },
        )
