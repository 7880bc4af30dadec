"""Hostile names. Dataset and column names from the declarations become SQL identifiers, so they
are checked when the declarations are read: a name with quotes, semicolons, unicode or more than
63 bytes is refused, with a message naming each one, before anything reaches the database. Names
that pass (spaces, hyphens, capitals, SQL words: `DROP TABLE datasets` is a fine column name)
are always quoted, and file and folder names from the drive are values, never identifiers: the
run creates exactly the declared dataset's tables and changes nothing else."""

from __future__ import annotations

import psycopg
import pytest
import yaml

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import (
    DEMO_CONFIG,
    ConfigError,
    Declarations,
    load_declarations,
)
from dynamic_assets.definitions import build_defs
from dynamic_assets.read.curated import read_curated
from dynamic_assets_tests.support.runs import run_all, tick

LONG = "a" * 100
HOSTILE_DATASETS = [
    'market"; DROP TABLE datasets; --',
    "données_marché",
    LONG,
    "Robert'); DROP TABLE students;--",
]
HOSTILE_COLUMNS = ['close"; DROP TABLE datasets; --', "prix_€", "x;y", "b" * 100, 'say "hi"']

# Accepted: always quoted, so they are just names.
DATASET = "drop_table_datasets"
COLUMNS = ["DROP TABLE datasets", "select", "Robert-Tables", "Mixed Case", "c" * 63]
FILE = "x'; DROP TABLE datasets; -- données.csv"
VALUE = "'); DROP TABLE datasets; --"


def snapshot(url: str) -> dict:
    """Every relation of every schema and the row count of every table outside ai_*."""
    with psycopg.connect(url, autocommit=True) as conn:
        rels = set(
            conn.execute(
                "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            ).fetchall()
        )
        counts = {
            name: conn.execute(f'SELECT count(*) FROM public."{name}"').fetchone()[0]
            for (schema, name, kind) in rels
            if schema == "public" and kind in ("r", "p")
        }
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
    return {"relations": rels, "counts": counts, "roles": roles}


def test_hostile_dataset_and_column_names_are_refused_before_the_database(tmp_path, db, settings):
    db.uri  # noqa: B018 - migrated, as a running code location's database would be
    before = snapshot(db.uri)
    decl = {
        "datasets": [{"name": n, "columns": [{"name": "a"}]} for n in HOSTILE_DATASETS]
        + [{"name": "ok_dataset", "columns": [{"name": c} for c in HOSTILE_COLUMNS]}]
    }
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(decl, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_declarations(path)
    message = str(info.value)
    for name in HOSTILE_DATASETS:
        assert f"dataset name {name!r} is not allowed" in message
    for name in HOSTILE_COLUMNS:
        assert f"column name {name!r} is not allowed" in message
    assert "at most 48 characters" in message and "at most 63 characters" in message
    # The code location does not load with such a file, so nothing ran and nothing changed.
    with pytest.raises(ConfigError):
        build_defs(settings, load_declarations(path))
    assert snapshot(db.uri) == before


def _declarations() -> Declarations:
    data = load_declarations(DEMO_CONFIG).model_dump(mode="json")
    data["datasets"].append(
        {
            "name": DATASET,
            "formats": ["csv"],
            "columns": [{"name": COLUMNS[0], "type": "integer", "nullable": False}]
            + [{"name": c} for c in COLUMNS[1:]],
            "primary_key": [COLUMNS[0]],
            "expectations": [{"type": "expect_column_values_to_not_be_null", "column": COLUMNS[1]}],
            "sensitivity": "internal",
        }
    )
    return Declarations.model_validate(data)


def test_quoted_names_and_hostile_file_names_create_exactly_the_declared_tables(
    db, drive_root, settings, instance
):
    decls = _declarations()
    folder = drive_root / "datasets" / DATASET / "2024-06-01"
    folder.mkdir(parents=True)
    rows = [",".join(f'"{c}"' for c in COLUMNS)]
    rows += [f'{i},"{VALUE}",ünïcödé {i},"a;b",{"x" * 10}' for i in range(1, 4)]
    (folder / FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
    # An undeclared dataset folder with a hostile name is recorded, never turned into a table.
    evil = drive_root / "datasets" / 'evil"; DROP TABLE datasets; --' / "2024-06-01"
    evil.mkdir(parents=True)
    (evil / "f.csv").write_text("a\n1\n", encoding="utf-8")

    defs = build_defs(settings, decls)
    first = tick(defs, instance)
    mine = [r for r in first.run_requests if r.tags["dataset"] == DATASET]
    others = first.__class__(
        run_requests=[r for r in first.run_requests if r.tags["dataset"] != DATASET],
        dynamic_partitions_requests=first.dynamic_partitions_requests,
    )
    # The demo first: the state to compare with (including the partitions just registered).
    assert all(r.success for r in run_all(defs, instance, others).values())
    before = snapshot(db.uri)
    outcome = run_all(defs, instance, first.__class__(run_requests=mine))
    assert [r.success for r in outcome.values()] == [True]
    after = snapshot(db.uri)

    new = {(s, n) for s, n, k in after["relations"] - before["relations"] if k in ("r", "p", "v")}
    part = {n for s, n in new if n.startswith(f"{DATASET}__")}
    assert new == {("ai_raw", DATASET), ("ai_curated", DATASET)} | {
        (s, p) for s in ("ai_raw", "ai_curated") for p in part
    }
    assert len(part) == 1  # one partition per schema, named by the version's hash
    assert before["relations"] <= after["relations"]  # nothing dropped
    assert after["roles"] == before["roles"]
    grew = {t for t in after["counts"] if after["counts"][t] != before["counts"].get(t)}
    assert grew <= {"datasets", "onedrive_ingest", "etl_runs", "version_schemas", "dataset_proofs",
                    "attestations", "dai_schema_migrations"}  # fmt: skip
    assert after["counts"]["datasets"] == before["counts"]["datasets"] + 1

    with psycopg.connect(db.uri, autocommit=True) as conn:
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                (f'ai_curated."{DATASET}"',),
            )
        ]
        files = conn.execute(
            "SELECT path, status FROM onedrive_ingest WHERE dataset = %s OR path LIKE 'datasets/evil%%'",
            (DATASET,),
        ).fetchall()
    assert cols[1 : 1 + len(COLUMNS)] == COLUMNS and cols[0] == "dataset_version"
    assert (f"datasets/{DATASET}/2024-06-01/{FILE}", "curated") in files
    assert any(
        p.startswith('datasets/evil"; DROP TABLE datasets; --') and s == "undeclared"
        for p, s in files
    )

    df = read_curated(DATASET, database=Database(db.uri))
    assert list(df.columns) == COLUMNS
    assert df["select"].tolist() == [VALUE] * 3
    assert df[COLUMNS[0]].tolist() == [1, 2, 3]
