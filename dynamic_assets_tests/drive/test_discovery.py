"""Discovery: what `discover` finds in a drive, and what it refuses, by listing only."""

from __future__ import annotations

import os
from pathlib import Path

from dynamic_assets.drive import LocalDrive
from dynamic_assets.drive.discovery import discover

CSV = (
    b"date,symbol,exchange,open,high,low,close,volume,note\n2024-06-03,ACME,XNAS,1,2,0.5,1.5,100,\n"
)


def put(root: Path, rel: str, data: bytes = CSV) -> Path:
    path = root / "datasets" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def problems_by_path(found) -> dict[str, object]:
    return {p.path: p for p in found.problems}


def rejected_by_name(vf) -> dict[str, object]:
    return {p.path.rsplit("/", 1)[-1]: p for p in vf.rejected}


def test_version_folders_are_found_with_their_files_and_formats(tmp_path, decls):
    put(tmp_path, "market/2024-06-01/xnas.csv")
    put(tmp_path, "market/2024-06-01/xnys.CSV")
    put(tmp_path, "market/v1.2/all.csv")
    put(tmp_path, "corpus/2024-06-01/news.jsonl", b'{"doc_id": "a"}\n')
    put(tmp_path, "corpus/2024-06-01/more.ndjson", b'{"doc_id": "b"}\n')
    put(tmp_path, "corpus/2024-06-01/batch.json", b'[{"doc_id": "c"}]')
    put(tmp_path, "embeddings/v2.0.1/part-0.parquet", b"PAR1")
    put(tmp_path, "embeddings/v2.0.1/part-1.pq", b"PAR1")

    found = discover(LocalDrive(tmp_path), decls)

    assert sorted(found.versions) == [
        "corpus/2024-06-01",
        "embeddings/v2.0.1",
        "market/2024-06-01",
        "market/v1.2",
    ]
    assert found.problems == []
    files = {
        key: sorted((item.path, fmt) for item, fmt in vf.files)
        for key, vf in found.versions.items()
    }
    assert files["market/2024-06-01"] == [
        ("datasets/market/2024-06-01/xnas.csv", "csv"),
        ("datasets/market/2024-06-01/xnys.CSV", "csv"),
    ]
    assert files["market/v1.2"] == [("datasets/market/v1.2/all.csv", "csv")]
    assert files["corpus/2024-06-01"] == [
        ("datasets/corpus/2024-06-01/batch.json", "json"),
        ("datasets/corpus/2024-06-01/more.ndjson", "jsonl"),
        ("datasets/corpus/2024-06-01/news.jsonl", "jsonl"),
    ]
    assert files["embeddings/v2.0.1"] == [
        ("datasets/embeddings/v2.0.1/part-0.parquet", "parquet"),
        ("datasets/embeddings/v2.0.1/part-1.pq", "parquet"),
    ]
    vf = found.versions["market/2024-06-01"]
    assert (vf.dataset, vf.version, vf.folder) == (
        "market",
        "2024-06-01",
        "datasets/market/2024-06-01",
    )
    assert vf.bytes == 2 * len(CSV)
    assert vf.rejected == []
    # Versions of one dataset come back in version order.
    assert [v.version for v in found.for_dataset("market")] == ["2024-06-01", "v1.2"]


def test_readme_and_notes_in_a_version_are_ignored(tmp_path, decls):
    put(tmp_path, "market/2024-06-01/xnas.csv")
    put(tmp_path, "market/2024-06-01/README.md", b"# June\n")
    put(tmp_path, "market/2024-06-01/notes.txt", b"notes\n")

    found = discover(LocalDrive(tmp_path), decls)

    vf = found.versions["market/2024-06-01"]
    assert [item.name for item, _ in vf.files] == ["xnas.csv"]
    assert vf.rejected == []
    assert found.problems == []


def test_hidden_files_and_folders_are_ignored(tmp_path, decls):
    put(tmp_path, "market/2024-06-01/xnas.csv")
    put(tmp_path, "market/2024-06-01/.xnys.csv.partial", b"half")
    put(tmp_path, "market/2024-06-01/.DS_Store", b"\x00\x01")
    put(tmp_path, "market/2024-06-01/.tmp/upload.csv")
    put(tmp_path, "market/.staging/x.csv")
    put(tmp_path, ".trash/old.csv")

    found = discover(LocalDrive(tmp_path), decls)

    assert list(found.versions) == ["market/2024-06-01"]
    vf = found.versions["market/2024-06-01"]
    assert [item.name for item, _ in vf.files] == ["xnas.csv"]
    assert vf.rejected == []
    assert found.problems == []


def test_an_undeclared_dataset_is_reported_with_a_hint_to_declare_it(tmp_path, decls):
    put(tmp_path, "weather/2024-06-01/obs.csv", b"a,b\n1,2\n")
    put(tmp_path, "weather/2024-06-02/obs.csv", b"a,b\n1,2\n")

    found = discover(LocalDrive(tmp_path), decls)

    assert found.versions == {}
    assert sorted(p.path for p in found.problems) == [
        "datasets/weather/2024-06-01/obs.csv",
        "datasets/weather/2024-06-02/obs.csv",
    ]
    for p in found.problems:
        assert p.status == "undeclared"
        assert p.dataset == "weather"
        assert "'weather' is not declared" in p.reason
        assert "dynamic-assets declare weather" in p.reason
        assert p.message.startswith(p.path + ": ")
        assert p.item is not None and not p.item.is_folder


def test_a_folder_that_is_not_a_version_is_reported(tmp_path, decls):
    put(tmp_path, "market/latest/xnas.csv")
    put(tmp_path, "market/2024-02-30/xnas.csv")  # not a real date

    found = discover(LocalDrive(tmp_path), decls)

    assert found.versions == {}
    problems = problems_by_path(found)
    latest = problems["datasets/market/latest"]
    assert latest.status == "ignored"
    assert latest.dataset == "market"
    assert "'latest' is not a version" in latest.reason
    assert "2024-06-01" in latest.reason and "v1.2" in latest.reason
    assert "'2024-02-30' is not a version" in problems["datasets/market/2024-02-30"].reason
    # The file inside is reported too, so nobody wonders why it was not loaded.
    assert "'latest' is not a version" in problems["datasets/market/latest/xnas.csv"].reason


def test_a_file_directly_in_the_dataset_folder_is_reported(tmp_path, decls):
    put(tmp_path, "market/xnas.csv")

    found = discover(LocalDrive(tmp_path), decls)

    (p,) = found.problems
    assert p.path == "datasets/market/xnas.csv"
    assert p.status == "ignored"
    assert "version folder" in p.reason


def test_unsafe_file_names_are_quarantined_inside_their_version(tmp_path, decls):
    put(tmp_path, "market/2024-06-01/xnas.csv")
    put(tmp_path, "market/2024-06-01/a..b.csv")
    put(tmp_path, "market/2024-06-01/bad\x07.csv")

    found = discover(LocalDrive(tmp_path), decls)

    vf = found.versions["market/2024-06-01"]
    assert [item.name for item, _ in vf.files] == ["xnas.csv"]
    rejected = rejected_by_name(vf)
    assert set(rejected) == {"a..b.csv", "bad\x07.csv"}
    dots = rejected["a..b.csv"]
    assert dots.status == "quarantined"
    assert dots.reason == "the name contains '..'"
    assert (dots.dataset, dots.version) == ("market", "2024-06-01")
    ctrl = rejected["bad\x07.csv"]
    assert ctrl.status == "quarantined"
    assert ctrl.reason == "the name contains a control character"
    # The message shows the control character escaped, never raw.
    assert "\x07" not in ctrl.message
    assert "bad\\x07.csv" in ctrl.message
    assert found.problems == []


def test_an_unknown_extension_is_rejected_naming_the_extension(tmp_path, decls):
    put(tmp_path, "market/2024-06-01/xnas.csv")
    put(tmp_path, "market/2024-06-01/prices.xlsx", b"PK\x03\x04")
    put(tmp_path, "market/2024-06-01/noext", b"x")

    found = discover(LocalDrive(tmp_path), decls)

    vf = found.versions["market/2024-06-01"]
    rejected = rejected_by_name(vf)
    xlsx = rejected["prices.xlsx"]
    assert xlsx.status == "quarantined"
    assert "unknown file format" in xlsx.reason
    assert "'xlsx'" in xlsx.reason
    assert "csv" in xlsx.reason
    assert "unknown file format" in rejected["noext"].reason
    assert [item.name for item, _ in vf.files] == ["xnas.csv"]


def test_a_format_the_dataset_does_not_declare_is_rejected(tmp_path, decls):
    put(tmp_path, "market/2024-06-01/xnas.csv")
    put(tmp_path, "market/2024-06-01/xnas.parquet", b"PAR1")
    put(tmp_path, "corpus/2024-06-01/news.csv", b"doc_id\na\n")

    found = discover(LocalDrive(tmp_path), decls)

    (pq_problem,) = found.versions["market/2024-06-01"].rejected
    assert pq_problem.path == "datasets/market/2024-06-01/xnas.parquet"
    assert pq_problem.status == "quarantined"
    assert pq_problem.reason == "format parquet is not declared for dataset market (declared: csv)"
    (csv_problem,) = found.versions["corpus/2024-06-01"].rejected
    assert csv_problem.reason == (
        "format csv is not declared for dataset corpus (declared: jsonl, json)"
    )


def test_nested_folders_inside_a_version_are_not_read(tmp_path, decls):
    put(tmp_path, "market/2024-06-01/xnas.csv")
    put(tmp_path, "market/2024-06-01/extra/more.csv")

    found = discover(LocalDrive(tmp_path), decls)

    vf = found.versions["market/2024-06-01"]
    assert [item.name for item, _ in vf.files] == ["xnas.csv"]
    (nested,) = vf.rejected
    assert nested.path == "datasets/market/2024-06-01/extra/more.csv"
    assert "nested folders" in nested.reason


def test_an_empty_version_folder_is_reported(tmp_path, decls):
    (tmp_path / "datasets" / "market" / "2024-06-01").mkdir(parents=True)
    put(tmp_path, "market/2024-06-02/README.md", b"only docs\n")
    put(tmp_path, "market/2024-06-03/xnas.csv")

    found = discover(LocalDrive(tmp_path), decls)

    assert sorted(found.versions) == ["market/2024-06-01", "market/2024-06-02", "market/2024-06-03"]
    problems = problems_by_path(found)
    assert set(problems) == {"datasets/market/2024-06-01", "datasets/market/2024-06-02"}
    for key in ("2024-06-01", "2024-06-02"):
        p = problems[f"datasets/market/{key}"]
        assert p.reason == "the version folder holds no data files"
        assert p.status == "quarantined"
        assert (p.dataset, p.version) == ("market", key)


def test_discovering_one_version_finds_it_even_when_empty(tmp_path, decls):
    (tmp_path / "datasets" / "market" / "2024-06-01").mkdir(parents=True)
    put(tmp_path, "market/2024-06-02/xnas.csv")

    found = discover(LocalDrive(tmp_path), decls, dataset="market", version="2024-06-01")

    assert list(found.versions) == ["market/2024-06-01"]
    (p,) = found.problems
    assert p.reason == "the version folder holds no data files"

    one = discover(LocalDrive(tmp_path), decls, dataset="market", version="2024-06-02")
    assert [item.name for item, _ in one.versions["market/2024-06-02"].files] == ["xnas.csv"]
    assert one.problems == []


def test_the_version_digest_follows_file_changes(tmp_path, decls):
    drive = LocalDrive(tmp_path)
    a = put(tmp_path, "market/2024-06-01/a.csv")
    put(tmp_path, "market/2024-06-02/a.csv")

    def digests() -> dict[str, str]:
        return {k: v.digest for k, v in discover(drive, decls).versions.items()}

    first = digests()
    assert digests() == first  # stable when nothing changed
    a.read_bytes()  # reading is not changing
    assert digests() == first

    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    touched = digests()
    assert touched["market/2024-06-01"] != first["market/2024-06-01"]
    assert touched["market/2024-06-02"] == first["market/2024-06-02"]
    assert digests() == touched

    put(tmp_path, "market/2024-06-01/b.csv")
    added = digests()
    assert added["market/2024-06-01"] not in (
        first["market/2024-06-01"],
        touched["market/2024-06-01"],
    )
    assert added["market/2024-06-02"] == first["market/2024-06-02"]

    # A rejected file counts too: a new one changes the digest, and removing it restores it.
    bad = put(tmp_path, "market/2024-06-01/prices.xlsx", b"PK")
    assert digests()["market/2024-06-01"] != added["market/2024-06-01"]
    bad.unlink()
    assert digests()["market/2024-06-01"] == added["market/2024-06-01"]

    # Removing a data file changes it again.
    (tmp_path / "datasets/market/2024-06-01/b.csv").unlink()
    assert digests()["market/2024-06-01"] == touched["market/2024-06-01"]


def test_a_large_drive_is_listed_and_classified(tmp_path, decls):
    base = tmp_path / "datasets" / "market"
    for v in range(100):
        folder = base / f"v1.{v}"
        folder.mkdir(parents=True)
        for i in range(99):
            (folder / f"part-{i:03d}.csv").write_bytes(b"x")
        (folder / "part-099.xlsx").write_bytes(b"x")

    found = discover(LocalDrive(tmp_path), decls)

    assert len(found.versions) == 100
    assert sum(len(v.files) for v in found.versions.values()) == 9_900
    assert sum(len(v.rejected) for v in found.versions.values()) == 100
    assert found.problems == []
    # datasets, datasets/market, 100 version folders, 10,000 files
    assert found.items_listed == 1 + 100 + 10_000
    assert [v.version for v in found.for_dataset("market")][:3] == ["v1.0", "v1.1", "v1.2"]
    assert found.for_dataset("market")[-1].version == "v1.99"


REFUSED_VERSIONS = {
    "v\uff11.0": "ASCII digits only",  # fullwidth digit one
    "v\u0661.\u0662": "ASCII digits only",  # Arabic-Indic digits one and two
    "v01.00": "leading zeros",
    "2030-02-30": "not a calendar date",
    "2024-06-01 ": "leading or trailing space",
}


def test_folders_that_look_like_versions_but_are_not_are_refused_with_the_reason(tmp_path, decls):
    put(tmp_path, "market/v1.0/xnas.csv")
    for name in REFUSED_VERSIONS:
        put(tmp_path, f"market/{name}/xnas.csv")

    found = discover(LocalDrive(tmp_path), decls)

    # Only the real version is a version; nothing is taken from the others.
    assert list(found.versions) == ["market/v1.0"]
    problems = problems_by_path(found)
    for name, says in REFUSED_VERSIONS.items():
        for path in (f"datasets/market/{name}", f"datasets/market/{name}/xnas.csv"):
            p = problems[path]
            assert p.status == "quarantined", path
            assert p.dataset == "market" and p.version is None
            assert f"{name!r} is not a version" in p.reason
            assert says in p.reason, (path, p.reason)


def test_major_only_version_folders_are_found_in_numeric_order(tmp_path, decls):
    for version in ("v10", "v2", "v1"):
        put(tmp_path, f"market/{version}/xnas.csv")

    found = discover(LocalDrive(tmp_path), decls)

    assert found.problems == []
    assert [v.version for v in found.for_dataset("market")] == ["v1", "v2", "v10"]
