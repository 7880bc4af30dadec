"""The code location loads, and every job, sensor and schedule resolves."""

import dagster as dg

from dynamic_assets.defs.datasets.assets import curated_key, manifest_key, raw_key
from dynamic_assets.defs.provenance.keys import provenance_keys


def test_definitions_resolve(defs, decls):
    repo = defs.get_repository_def()
    keys = repo.asset_graph.get_all_asset_keys()
    for ds in decls.datasets:
        assert {manifest_key(ds.name), raw_key(ds.name), curated_key(ds.name)} <= keys
        job = defs.get_job_def(f"ingest_{ds.name}")
        assert isinstance(job.partitions_def, dg.DynamicPartitionsDefinition)
        assert job.partitions_def.name == f"{ds.name}_versions"
        assert defs.get_schedule_def(f"hourly_reconcile_{ds.name}").cron_schedule == "0 * * * *"
        assert defs.get_schedule_def(f"hourly_reconcile_{ds.name}").job_name == job.name
        # What a backfill or a launch of the ingest job runs: the manifest and staging, with
        # staging's checks (all of them, shown in that run); curated and provenance are the
        # curate job's, run once staging succeeded.
        staging = {manifest_key(ds.name), raw_key(ds.name)}
        assert set(job.asset_layer.selected_asset_keys) == staging
        checks = {k for d in job.asset_layer.data for k in d.assets_def.check_keys}
        assert checks == {
            k for k in repo.asset_graph.asset_check_keys if k.asset_key == raw_key(ds.name)
        }
        assert {"rows_castable", "schema_unchanged"} <= {k.name for k in checks}
        curate = defs.get_job_def(f"curate_{ds.name}")
        assert curate.partitions_def == job.partitions_def
        assert set(curate.asset_layer.selected_asset_keys) == {
            curated_key(ds.name),
            *provenance_keys(ds.name),
        }
        assert defs.get_schedule_def(f"hourly_attest_{ds.name}").job_name == curate.name
    assert defs.get_sensor_def("drive_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    # Lineage: curated depends on staging, staging on the manifest.
    graph = repo.asset_graph
    assert graph.get(curated_key("market")).parent_keys == {raw_key("market")}
    assert graph.get(raw_key("market")).parent_keys == {manifest_key("market")}
    checks = {k.name for k in repo.asset_graph.asset_check_keys}
    assert "rows_castable" in checks


def test_module_level_defs_load_from_the_packaged_demo(monkeypatch, tmp_path):
    import importlib

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DYNAMIC_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.delenv("DYNAMIC_ASSETS_CONFIG", raising=False)
    import dynamic_assets.definitions as module

    module = importlib.reload(module)
    assert {a.key for a in module.defs.resolve_all_asset_specs()} >= {
        curated_key("market"),
        curated_key("embeddings"),
    }
    # Nothing happened at import: no Postgres data folder, no drive written.
    assert not (tmp_path / "home").exists()


def test_each_node_of_a_group_reads_alone(defs, decls):
    """The asset graph names a node by the last part of its key (`market` three times in a
    group); beneath the name it shows the asset's kinds, and its description's first line when
    the description facet is on. Each node carries the step it is in both."""
    graph = defs.get_repository_def().asset_graph
    for ds in decls.datasets:
        for key, step in (
            (manifest_key(ds.name), "files"),
            (raw_key(ds.name), "staging"),
            (curated_key(ds.name), "curated"),
        ):
            node = graph.get(key)
            assert step in node.kinds, (key, node.kinds)
            first_line = (node.description or "").splitlines()[0]
            assert first_line.startswith(f"{ds.name} {step}"), (key, first_line)
