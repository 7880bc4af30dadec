"""A listing of many files with hostile names among them: every item, verdict and version digest
as the drive shows them, checked against `os.lstat` and `hashlib` directly (not the listing's own
code), and the verdicts against fixed vectors."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dynamic_assets.drive import LocalDrive
from dynamic_assets.drive.base import DriveItem
from dynamic_assets.drive.discovery import discover

T0 = 1_717_200_000_123_456_789  # ns

FILES = [
    *(f"market/2024-06-01/part-{i:02d}.csv" for i in range(40)),
    "market/2024-06-01/README.md",
    "market/2024-06-01/notes.TXT",
    "market/2024-06-01/a.b.CSV",
    "market/2024-06-01/noext",
    "market/2024-06-01/trailing.",
    "market/2024-06-01/prices.xlsx",
    "market/2024-06-01/batch.json",
    "market/2024-06-01/.hidden.csv",
    "market/2024-06-01/bad\x01name.csv",
    "market/2024-06-01/sub/deep/x.csv",
    "market/2024-06-01/sub/y.csv",
    "market/2024-06-01/ü nicode.csv",
    "market/2024-06-01/x..csv",
    *(f"market/v1.2/p{i}.csv" for i in range(30)),
    "market/notaversion/x.csv",
    "market/v01.00/x.csv",
    "market/loose.csv",
    "market/.partial/x.csv",
    "weather/2024-01-01/a.csv",
    "weather/2024-01-01/README.md",
    "weather/misc/a.csv",
    "top.csv",
    "corpus/2024-06-01/news.jsonl",
    "corpus/2024-06-01/NEWS.NDJSON",
    "corpus/2024-06-01/bad\x7f.jsonl",
    "embeddings/v2.0.1/part-0.parquet",
    "embeddings/v2.0.1/part-1.pq",
    "embeddings/v2.0.1/part-2.csv",
]
EMPTY_FOLDERS = ["market/2024-07-01"]
RAW_NAME = b"market/2024-06-01/caf\xe9.csv"  # not UTF-8: listed as `caf\\xe9.csv`, refused

# The verdicts, in listing order: (path, status, reason, dataset, version) of each problem, and
# (key, folder, [(file name, format)], [(path, status, reason)] rejected) of each version.
PROBLEMS = [
    (
        "datasets/top.csv",
        "undeclared",
        "dataset 'top.csv' is not declared (run `dynamic-assets declare top.csv --from <folder>`)",
        "top.csv",
        None,
    ),
    (
        "datasets/weather/misc/a.csv",
        "undeclared",
        "dataset 'weather' is not declared (run `dynamic-assets declare weather --from <folder>`)",
        "weather",
        None,
    ),
    (
        "datasets/weather/2024-01-01/a.csv",
        "undeclared",
        "dataset 'weather' is not declared (run `dynamic-assets declare weather --from <folder>`)",
        "weather",
        "2024-01-01",
    ),
    (
        "datasets/market/loose.csv",
        "ignored",
        "files belong in a version folder, not directly in the dataset folder",
        "market",
        None,
    ),
    (
        "datasets/market/notaversion",
        "ignored",
        "'notaversion' is not a version: use a date (2024-06-01) or v1 / v1.2 / v1.2.3",
        "market",
        None,
    ),
    (
        "datasets/market/v01.00",
        "quarantined",
        "'v01.00' is not a version: version numbers have no leading zeros (v1.0, not v01.00)",
        "market",
        None,
    ),
    (
        "datasets/market/v01.00/x.csv",
        "quarantined",
        "'v01.00' is not a version: version numbers have no leading zeros (v1.0, not v01.00)",
        "market",
        None,
    ),
    (
        "datasets/market/notaversion/x.csv",
        "ignored",
        "'notaversion' is not a version: use a date (2024-06-01) or v1 / v1.2 / v1.2.3",
        "market",
        None,
    ),
    (
        "datasets/market/2024-07-01",
        "quarantined",
        "the version folder holds no data files",
        "market",
        "2024-07-01",
    ),
]
VERSIONS = [
    (
        "market/2024-06-01",
        "datasets/market/2024-06-01",
        [
            ("a.b.CSV", "csv"),
            ("part-00.csv", "csv"),
            ("part-01.csv", "csv"),
            ("part-02.csv", "csv"),
            ("part-03.csv", "csv"),
            ("part-04.csv", "csv"),
            ("part-05.csv", "csv"),
            ("part-06.csv", "csv"),
            ("part-07.csv", "csv"),
            ("part-08.csv", "csv"),
            ("part-09.csv", "csv"),
            ("part-10.csv", "csv"),
            ("part-11.csv", "csv"),
            ("part-12.csv", "csv"),
            ("part-13.csv", "csv"),
            ("part-14.csv", "csv"),
            ("part-15.csv", "csv"),
            ("part-16.csv", "csv"),
            ("part-17.csv", "csv"),
            ("part-18.csv", "csv"),
            ("part-19.csv", "csv"),
            ("part-20.csv", "csv"),
            ("part-21.csv", "csv"),
            ("part-22.csv", "csv"),
            ("part-23.csv", "csv"),
            ("part-24.csv", "csv"),
            ("part-25.csv", "csv"),
            ("part-26.csv", "csv"),
            ("part-27.csv", "csv"),
            ("part-28.csv", "csv"),
            ("part-29.csv", "csv"),
            ("part-30.csv", "csv"),
            ("part-31.csv", "csv"),
            ("part-32.csv", "csv"),
            ("part-33.csv", "csv"),
            ("part-34.csv", "csv"),
            ("part-35.csv", "csv"),
            ("part-36.csv", "csv"),
            ("part-37.csv", "csv"),
            ("part-38.csv", "csv"),
            ("part-39.csv", "csv"),
            ("ü nicode.csv", "csv"),
        ],
        [
            (
                "datasets/market/2024-06-01/bad\x01name.csv",
                "quarantined",
                "the name contains a control character",
            ),
            (
                "datasets/market/2024-06-01/batch.json",
                "quarantined",
                "format json is not declared for dataset market (declared: csv)",
            ),
            (
                "datasets/market/2024-06-01/noext",
                "quarantined",
                "unknown file format (extension '(none)'); expected one of csv",
            ),
            (
                "datasets/market/2024-06-01/prices.xlsx",
                "quarantined",
                "unknown file format (extension 'xlsx'); expected one of csv",
            ),
            (
                "datasets/market/2024-06-01/trailing.",
                "quarantined",
                "unknown file format (extension ''); expected one of csv",
            ),
            ("datasets/market/2024-06-01/x..csv", "quarantined", "the name contains '..'"),
            (
                "datasets/market/2024-06-01/sub/y.csv",
                "ignored",
                "nested folders inside a version are not read",
            ),
            (
                "datasets/market/2024-06-01/sub/deep/x.csv",
                "ignored",
                "nested folders inside a version are not read",
            ),
        ],
    ),
    ("market/2024-07-01", "datasets/market/2024-07-01", [], []),
    (
        "market/v1.2",
        "datasets/market/v1.2",
        [
            ("p0.csv", "csv"),
            ("p1.csv", "csv"),
            ("p10.csv", "csv"),
            ("p11.csv", "csv"),
            ("p12.csv", "csv"),
            ("p13.csv", "csv"),
            ("p14.csv", "csv"),
            ("p15.csv", "csv"),
            ("p16.csv", "csv"),
            ("p17.csv", "csv"),
            ("p18.csv", "csv"),
            ("p19.csv", "csv"),
            ("p2.csv", "csv"),
            ("p20.csv", "csv"),
            ("p21.csv", "csv"),
            ("p22.csv", "csv"),
            ("p23.csv", "csv"),
            ("p24.csv", "csv"),
            ("p25.csv", "csv"),
            ("p26.csv", "csv"),
            ("p27.csv", "csv"),
            ("p28.csv", "csv"),
            ("p29.csv", "csv"),
            ("p3.csv", "csv"),
            ("p4.csv", "csv"),
            ("p5.csv", "csv"),
            ("p6.csv", "csv"),
            ("p7.csv", "csv"),
            ("p8.csv", "csv"),
            ("p9.csv", "csv"),
        ],
        [],
    ),
    (
        "embeddings/v2.0.1",
        "datasets/embeddings/v2.0.1",
        [("part-0.parquet", "parquet"), ("part-1.pq", "parquet")],
        [
            (
                "datasets/embeddings/v2.0.1/part-2.csv",
                "quarantined",
                "format csv is not declared for dataset embeddings (declared: parquet)",
            )
        ],
    ),
    (
        "corpus/2024-06-01",
        "datasets/corpus/2024-06-01",
        [("NEWS.NDJSON", "jsonl"), ("news.jsonl", "jsonl")],
        [
            (
                "datasets/corpus/2024-06-01/bad\x7f.jsonl",
                "quarantined",
                "the name contains a control character",
            )
        ],
    ),
]


def _build(root: Path, *, raw_name: bool = False) -> None:
    base = root / "datasets"
    for i, rel in enumerate(FILES):
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (i % 7))
        os.utime(path, ns=(T0, T0 + i * 1_000_003))
    for rel in EMPTY_FOLDERS:
        (base / rel).mkdir(parents=True)
    if raw_name:
        with open(os.fsencode(base) + b"/" + RAW_NAME, "wb") as f:
            f.write(b"abc")
    folders = sorted({p for p, _, _ in os.walk(base)}, key=len, reverse=True)
    for j, folder in enumerate(folders):
        os.utime(folder, ns=(T0, T0 - j * 999_999_937))


def _expected_item(root: Path, rel: str, listed: str | None = None) -> DriveItem:
    """The item of file `rel` (as the file system names it), listed as `listed`."""
    listed = listed or rel
    st = os.lstat(os.fsencode(root) + b"/" + os.fsencode(rel))
    folder = os.path.isdir(os.fsencode(root) + b"/" + os.fsencode(rel))
    sha1 = hashlib.sha1
    return DriveItem(
        item_id="local-" + sha1(os.fsencode(rel)).hexdigest()[:20],
        path=listed,
        name=listed.split("/")[-1],
        is_folder=folder,
        size=0 if folder else st.st_size,
        modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
        etag=sha1(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16],
    )


def _expected_digest(files: list[DriveItem], rejected: list[DriveItem]) -> str:
    h = hashlib.sha1()
    for it in sorted(files, key=lambda i: i.path):
        h.update(os.fsencode(it.path) + b"\x00" + str(it.size).encode() + b"\x00")
        h.update(it.etag.encode() + b"\n")
    for it in sorted(rejected, key=lambda i: i.path):
        h.update(b"!" + os.fsencode(it.path) + b"\x00" + it.etag.encode() + b"\n")
    return h.hexdigest()[:16]


@pytest.fixture
def hostile_drive(tmp_path) -> Path:
    _build(tmp_path)
    return tmp_path


def test_every_listed_item_is_what_the_file_system_says(tmp_path):
    _build(tmp_path, raw_name=True)
    hostile_drive = tmp_path
    items = list(LocalDrive(hostile_drive).list_tree("datasets"))
    on_disk = {}  # listed path -> the path as the file system holds it
    for dirpath, dirnames, filenames in os.walk(os.fsencode(hostile_drive / "datasets")):
        rel = os.path.relpath(dirpath, os.fsencode(hostile_drive))
        for n in dirnames + filenames:
            # Bytes that are not UTF-8 are listed as \xNN.
            listed = (rel + b"/" + n).decode("utf-8", "backslashreplace")
            on_disk[listed] = os.fsdecode(rel + b"/" + n)
    assert "datasets/market/2024-06-01/caf\\xe9.csv" in on_disk
    assert sorted(i.path for i in items) == sorted(on_disk)
    assert items == [_expected_item(hostile_drive, on_disk[i.path], i.path) for i in items]
    # Each folder's children come in name order, right after their folder or its subtree.
    order = [i.path for i in items]
    for parent in {p.rsplit("/", 1)[0] for p in order}:
        children = [p for p in order if p.rsplit("/", 1)[0] == parent]
        assert children == sorted(children)


def test_verdicts_and_digests_of_a_hostile_drive(hostile_drive, decls):
    found = discover(LocalDrive(hostile_drive), decls)

    walked = list(os.walk(hostile_drive / "datasets"))
    assert (
        found.items_listed == len(found.paths) == len(walked) - 1 + sum(len(f) for *_, f in walked)
    )
    assert [(p.path, p.status, p.reason, p.dataset, p.version) for p in found.problems] == PROBLEMS
    assert [
        (
            k,
            v.folder,
            [(i.path.rsplit("/", 1)[1], fmt) for i, fmt in v.files],
            [(p.path, p.status, p.reason) for p in v.rejected],
        )
        for k, v in found.versions.items()
    ] == VERSIONS
    for key, vf in found.versions.items():
        files = [_expected_item(hostile_drive, i.path) for i, _ in vf.files]
        rejected = [_expected_item(hostile_drive, p.path) for p in vf.rejected]
        assert [i for i, _ in vf.files] == files
        assert [p.item for p in vf.rejected] == rejected
        assert vf.digest == _expected_digest(files, rejected), key
    for p in found.problems:
        if p.item is not None:
            assert p.item == _expected_item(hostile_drive, p.path)


def test_a_tick_sees_each_change_among_many_unchanged_files(tmp_path, decls):
    from dynamic_assets.defs.datasets.sensors import decode_cursor, encode_cursor, plan_tick

    base = tmp_path / "datasets" / "market"
    for v in range(8):
        for i in range(60):
            path = base / f"v1.{v}" / f"part-{i:02d}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"date\n")
            os.utime(path, ns=(T0, T0 + v * 1000 + i))
    drive = LocalDrive(tmp_path)

    def run_keys(cursor: str | None) -> tuple[set[str], str]:
        found = discover(drive, decls)
        requests, _, state, _ = plan_tick(found, decode_cursor(cursor), {})
        return {r.run_key for r in requests}, encode_cursor(state)

    def expected_key(version: str) -> str:
        folder = base / version
        files = [
            _expected_item(tmp_path, f"datasets/market/{version}/{n}") for n in os.listdir(folder)
        ]
        return f"market|{version}|{_expected_digest(files, [])}"

    first, cursor = run_keys(None)
    assert first == {expected_key(f"v1.{v}") for v in range(8)}
    assert run_keys(cursor) == (set(), cursor)  # nothing changed: nothing to run, same cursor

    (base / "v1.1" / "part-07.csv").write_bytes(b"date\n2024-06-03\n")  # changed
    (base / "v1.2" / "part-60.csv").write_bytes(b"date\n")  # new
    (base / "v1.3" / "part-59.csv").unlink()  # deleted
    (base / "v1.4").rename(base / "v1.9")  # renamed folder
    changed, after = run_keys(cursor)
    assert changed == {expected_key(v) for v in ("v1.1", "v1.2", "v1.3", "v1.9")}
    assert "market/v1.4" not in decode_cursor(after)["versions"]
    assert run_keys(after) == (set(), after)


def test_the_garbage_collector_is_as_it_was_after_a_listing(hostile_drive, decls):
    import gc

    assert gc.isenabled()
    discover(LocalDrive(hostile_drive), decls)
    assert gc.isenabled()
    gc.disable()
    try:
        discover(LocalDrive(hostile_drive), decls)
        assert not gc.isenabled()
    finally:
        gc.enable()
