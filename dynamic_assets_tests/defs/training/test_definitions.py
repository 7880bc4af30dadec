"""The code location holds a training asset per declared model, partitioned like its dataset and
downstream of its fingerprint, its job, and the two training sensors, on by default."""

from __future__ import annotations

import dagster as dg

from dynamic_assets.defs.datasets.partitions import versions_partitions
from dynamic_assets.defs.provenance.keys import fingerprint_key
from dynamic_assets.defs.training.keys import model_key, train_job_name


def test_training_definitions_resolve(defs, decls):
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    for model in decls.models:
        node = graph.get(model_key(model.name))
        assert node.parent_keys == {fingerprint_key(model.dataset)}
        assert node.partitions_def == versions_partitions(model.dataset)
        assert node.automation_condition.get_label() == "new version or changed data"
        assert node.code_version and len(node.code_version) == 16
        job = defs.get_job_def(train_job_name(model.name))
        assert job.partitions_def == versions_partitions(model.dataset)
    for name in ("model_checkpoints_sensor", "training_automation_sensor"):
        assert defs.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    # Dagster's own automation sensor (stopped by default) is not needed for the models.
    assert "default_automation_condition_sensor" not in {s.name for s in repo.sensor_defs}
    assert "mlflow" in defs.resources
