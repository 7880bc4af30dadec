"""A model declared `versions: current` trains on its dataset's current version: after a
promotion, on the promoted version (what `run` plans through `pending_training`), and records
every other version as skipped."""

from __future__ import annotations

import pytest

from dynamic_assets.datasets.pointers import promote
from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.defs.training.keys import model_key, train_job_name
from dynamic_assets.training.records import pending_training
from dynamic_assets_tests.support.runs import latest_metadata, run_version

V1, V2 = "2024-06-01", "2024-07-01"
RANGE = "market_next_range"


@pytest.fixture
def decls():
    declared = load_declarations(DEMO_CONFIG)
    for model in declared.models:
        if model.name == RANGE:
            model.versions = "current"
    return declared


def _pending(db, decls) -> list[str]:
    with db.connect() as conn:
        return [p.version for p in pending_training(conn, decls, "market") if p.model.name == RANGE]


def test_a_current_model_trains_on_the_promoted_version(db, decls, defs, instance):
    for version in (V1, V2):
        assert run_version(defs, instance, "market", version).success
    assert _pending(db, decls) == [V2]  # nothing promoted: the newest version is current

    with db.connect() as conn, conn.transaction():
        promote(conn, "market", V1, reason="back to June")
    assert _pending(db, decls) == [V1]

    assert run_version(defs, instance, "market", V1, job=train_job_name(RANGE)).success
    trained = latest_metadata(instance, model_key(RANGE), V1)
    assert trained["trained"].value is True
    assert _pending(db, decls) == []

    assert run_version(defs, instance, "market", V2, job=train_job_name(RANGE)).success
    skipped = latest_metadata(instance, model_key(RANGE), V2)
    assert skipped["skipped"].value == (
        f"nothing to do: {RANGE} trains on the current market version only ({V1})"
    )
