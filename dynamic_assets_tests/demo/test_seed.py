"""The demo drive seed: layout, parseable files that honour the declarations, reproducibility."""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamic_assets.declarations.model import DEMO_CONFIG, Dataset, Declarations, load_declarations
from dynamic_assets.declarations.names import is_version
from dynamic_assets.demo.seed import SEED_VERSIONS, SeededFile, seed_drive

DECLS = load_declarations(DEMO_CONFIG)


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SeededFile]]:
    root = tmp_path_factory.mktemp("drive")
    return root, seed_drive(root)


def read_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows of a data file, parsed the way a user's tool would."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or []), list(reader)
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        return list(rows[0]), rows
    if path.suffix == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(rows, list)
        return list(rows[0]), rows
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        return table.column_names, table.to_pylist()
    raise AssertionError(f"unexpected data file {path}")


def data_files(root: Path, dataset: str, version: str) -> list[Path]:
    folder = root / "datasets" / dataset / version
    return sorted(p for p in folder.iterdir() if p.name != "README.md")


def version_rows(root: Path, ds: Dataset, version: str) -> list[dict[str, Any]]:
    rows = []
    for path in data_files(root, ds.name, version):
        names, file_rows = read_rows(path)
        assert names == [c.name for c in ds.columns], path
        for row in file_rows:
            assert list(row) == names, path
        rows += file_rows
    return rows


def is_null(value: Any) -> bool:
    return value is None or value == ""


def check_type(column: str, declared: str, value: Any) -> None:
    """A non-null value parses as its declared type (CSV gives text, JSON/Parquet typed values)."""
    if declared == "date":
        date.fromisoformat(value)
    elif declared == "float":
        assert math.isfinite(float(value)), (column, value)
    elif declared == "integer":
        assert not isinstance(value, float | bool) and int(value) == int(str(value)), (
            column,
            value,
        )
    elif declared == "string":
        assert isinstance(value, str), (column, value)
    elif declared == "timestamp":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        assert moment.tzinfo is not None, (column, value)
    elif declared == "json":
        assert isinstance(value, dict | list), (column, value)
    elif declared.startswith("vector("):
        dim = int(declared[7:-1])
        assert len(value) == dim and all(isinstance(x, float) for x in value), (column, value)
    else:
        raise AssertionError(f"untested type {declared}")


def test_layout_and_returned_files(drive: tuple[Path, list[SeededFile]]) -> None:
    root, seeded = drive
    for folder in ("datasets", "model-checkpoints", "etl-staging", "reports"):
        assert (root / folder).is_dir()
    assert sorted(p.name for p in (root / "datasets").iterdir()) == sorted(SEED_VERSIONS)
    for dataset, versions in SEED_VERSIONS.items():
        assert len(versions) >= 2 and all(is_version(v) for v in versions)
        on_disk = sorted(p.name for p in (root / "datasets" / dataset).iterdir())
        assert on_disk == sorted(versions)
        for version in versions:
            assert data_files(root, dataset, version), (dataset, version)
    expected = {
        ("market", "2024-06-01"): ["nasdaq.csv", "nyse.csv"],
        ("market", "2024-07-01"): ["nasdaq.csv", "nyse.csv"],
        ("corpus", "v1.0"): ["part-0001.jsonl"],
        ("corpus", "v1.1"): ["extra.json", "part-0001.jsonl"],
        ("embeddings", "v2.3"): ["items.parquet"],
        ("embeddings", "v2.3.1"): ["items.parquet"],
    }
    for (dataset, version), names in expected.items():
        assert [p.name for p in data_files(root, dataset, version)] == names

    # The returned list describes exactly the data files on disk.
    all_files = sorted(
        p.relative_to(root).as_posix()
        for p in (root / "datasets").rglob("*")
        if p.is_file() and p.name != "README.md"
    )
    assert sorted(f.path for f in seeded) == all_files
    for f in seeded:
        path = root / f.path
        assert f.bytes == path.stat().st_size
        assert f.rows == len(read_rows(path)[1])
        assert f.path.split("/")[1:3] == [f.dataset, f.version]
        assert f.rows >= 50
    with pytest.raises(AttributeError):
        seeded[0].rows = 0  # type: ignore[misc]


def test_readme_has_schema_and_provenance(drive: tuple[Path, list[SeededFile]]) -> None:
    root, _ = drive
    for ds in DECLS.datasets:
        for version in SEED_VERSIONS[ds.name]:
            text = (root / "datasets" / ds.name / version / "README.md").read_text("utf-8")
            assert version in text
            for c in ds.columns:
                assert f"| `{c.name}` | {c.type} |" in text
            assert "generator:" in text and "seed: 7" in text
            created = re.search(r"created: (\S+)", text)
            assert created and datetime.fromisoformat(created.group(1)).tzinfo is not None


@pytest.mark.parametrize("dataset", sorted(SEED_VERSIONS))
def test_files_honour_the_declaration(drive: tuple[Path, list[SeededFile]], dataset: str) -> None:
    root, _ = drive
    ds = DECLS.dataset(dataset)
    for version in SEED_VERSIONS[dataset]:
        rows = version_rows(root, ds, version)
        assert rows
        for row in rows:
            for c in ds.columns:
                value = row[c.name]
                if is_null(value):
                    assert c.nullable, (version, c.name, row)
                else:
                    check_type(c.name, c.type, value)
        keys = [tuple(row[k] for k in ds.primary_key) for row in rows]
        assert len(keys) == len(set(keys)), f"{dataset} {version}: duplicate primary keys"
        for e in ds.expectations:
            kw = e.kwargs
            values = [row[kw["column"]] for row in rows if not is_null(row[kw["column"]])]
            if e.type == "expect_column_values_to_be_between":
                assert all(float(v) >= kw["min_value"] for v in values), e
            elif e.type == "expect_column_values_to_match_regex":
                assert all(re.search(kw["regex"], v) for v in values), e
            elif e.type == "expect_column_values_to_be_in_set":
                assert set(values) <= set(kw["value_set"]), e
                assert len(set(values)) >= 5  # really multilingual
            else:
                raise AssertionError(f"untested expectation {e.type}")


def test_market_bars_are_consistent_and_notes_need_quoting(
    drive: tuple[Path, list[SeededFile]],
) -> None:
    root, _ = drive
    ds = DECLS.dataset("market")
    for version in SEED_VERSIONS["market"]:
        for path in data_files(root, "market", version):
            _, rows = read_rows(path)
            assert 200 <= len(rows) <= 1000
            assert len({r["exchange"] for r in rows}) == 1
            assert len({r["symbol"] for r in rows}) >= 12
            for r in rows:
                o, h, lo, c = (float(r[k]) for k in ("open", "high", "low", "close"))
                assert 0 < lo <= min(o, c) and max(o, c) <= h, r
            notes = [r["note"] for r in rows]
            assert sum(1 for n in notes if n) < len(notes) / 4  # mostly empty
            assert any("," in n and '"' in n and "\n" in n for n in notes), path
            assert any(not n.isascii() for n in notes), path
        rows = version_rows(root, ds, version)
        dates = sorted({r["date"] for r in rows})
        assert 15 <= len(dates) <= 30
        assert all(date.fromisoformat(d).weekday() < 5 for d in dates)


def test_corpus_is_multilingual_unicode(drive: tuple[Path, list[SeededFile]]) -> None:
    root, _ = drive
    ds = DECLS.dataset("corpus")
    raw = (root / "datasets/corpus/v1.0/part-0001.jsonl").read_text("utf-8")
    assert "\\u" not in raw  # written with ensure_ascii=False
    rows = version_rows(root, ds, "v1.0")
    assert 150 <= len(rows) <= 300
    assert all(re.fullmatch(r"doc-\d{6}", r["doc_id"]) for r in rows)
    assert any(not r["body"].isascii() for r in rows)
    scripts = {
        "ja": r"[\u3040-\u30ff\u4e00-\u9fff]",
        "zh": r"[\u4e00-\u9fff]",
        "ar": r"[\u0600-\u06ff]",
        "ru": r"[\u0400-\u04ff]",
    }
    for lang, script in scripts.items():
        bodies = [r["body"] for r in rows if r["lang"] == lang]
        assert bodies and all(re.search(script, b) for b in bodies), lang
    for r in rows:
        assert r["tokens"] > 0
        assert isinstance(r["meta"]["source"], dict) and isinstance(r["meta"]["tags"], list)
    extra = json.loads((root / "datasets/corpus/v1.1/extra.json").read_text("utf-8"))
    assert 30 <= len(extra) <= 80


def test_embeddings_are_typed_unit_vectors_that_cluster(
    drive: tuple[Path, list[SeededFile]],
) -> None:
    root, _ = drive
    for version in SEED_VERSIONS["embeddings"]:
        table = pq.read_table(root / "datasets/embeddings" / version / "items.parquet")
        schema = table.schema
        assert schema.field("item_id").type == pa.int64()
        assert schema.field("label").type == pa.string()
        assert schema.field("score").type == pa.float64()
        assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
        assert pa.types.is_list(schema.field("embedding").type)
        assert schema.field("embedding").type.value_type == pa.float32()
        assert table.column("score").null_count > 0
        vectors = np.array(table.column("embedding").to_pylist())
        assert vectors.shape == (table.num_rows, 16)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        labels = np.array(table.column("label").to_pylist())
        assert 3 <= len(set(labels)) <= 10
        sims = vectors @ vectors.T
        same = labels[:, None] == labels[None, :]
        assert sims[same].mean() > sims[~same].mean() + 0.3


def test_second_versions_overlap_and_differ(drive: tuple[Path, list[SeededFile]]) -> None:
    root, _ = drive
    for dataset, (v1, v2) in ((d, SEED_VERSIONS[d][:2]) for d in SEED_VERSIONS):
        ds = DECLS.dataset(dataset)

        def by_key(version: str, ds: Dataset = ds) -> dict[tuple, str]:
            rows = version_rows(root, ds, version)
            return {
                tuple(r[k] for k in ds.primary_key): json.dumps(r, default=str, sort_keys=True)
                for r in rows
            }

        old, new = by_key(v1), by_key(v2)
        shared = old.keys() & new.keys()
        assert shared, dataset
        assert new.keys() - old.keys(), f"{dataset}: {v2} adds no rows"
        changed = [k for k in shared if old[k] != new[k]]
        assert changed, f"{dataset}: {v2} changes no rows"
        assert len(changed) < len(shared) / 2, dataset


def test_seeding_is_reproducible_and_idempotent(
    tmp_path: Path, drive: tuple[Path, list[SeededFile]]
) -> None:
    first_root, first = drive
    root = tmp_path / "again"
    seeded = seed_drive(root)
    assert seeded == first

    def snapshot(where: Path) -> dict[str, bytes]:
        return {
            p.relative_to(where).as_posix(): p.read_bytes()
            for p in sorted(where.rglob("*"))
            if p.is_file()
        }

    before = snapshot(root)
    assert before == snapshot(first_root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert seed_drive(root) == seeded
    assert snapshot(root) == before  # nothing duplicated, nothing changed
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes

    other = seed_drive(tmp_path / "other", seed=8)
    assert [f.path for f in other] == [f.path for f in seeded]
    assert snapshot(tmp_path / "other") != before


def test_scale_multiplies_rows(tmp_path: Path, drive: tuple[Path, list[SeededFile]]) -> None:
    _, base = drive
    doubled = seed_drive(tmp_path, scale=2)
    rows = {(f.dataset, f.version, f.path): f.rows for f in base}
    for f in doubled:
        assert (
            1.8 * rows[f.dataset, f.version, f.path]
            <= f.rows
            <= 2.2 * rows[f.dataset, f.version, f.path]
        )
    with pytest.raises(ValueError, match="scale"):
        seed_drive(tmp_path, scale=0)


def test_declarations_choose_and_constrain_what_is_seeded(tmp_path: Path) -> None:
    only_market = Declarations(datasets=[DECLS.dataset("market")])
    seeded = seed_drive(tmp_path / "one", only_market)
    assert {f.dataset for f in seeded} == {"market"}
    assert not (tmp_path / "one/datasets/corpus").exists()

    market = DECLS.dataset("market").model_dump()
    market["columns"] = [c for c in market["columns"] if c["name"] != "note"]
    with pytest.raises(ValueError, match="market"):
        seed_drive(tmp_path / "two", Declarations.model_validate({"datasets": [market]}))

    embeddings = DECLS.dataset("embeddings").model_dump()
    for c in embeddings["columns"]:
        if c["name"] == "score":
            c["nullable"] = False
    with pytest.raises(ValueError, match="score"):
        seed_drive(tmp_path / "three", Declarations.model_validate({"datasets": [embeddings]}))
