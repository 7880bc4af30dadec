"""The checks a listing applies to every name agree with their definitions: a control character
is Unicode category Cc, and a file's format follows the suffix pathlib gives its name."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

from dynamic_assets.declarations.model import FILE_EXTENSIONS, Dataset
from dynamic_assets.declarations.names import unsafe_file_name_reason
from dynamic_assets.drive import LocalDrive
from dynamic_assets.drive.discovery import discover


def test_every_control_character_and_only_those_is_refused():
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if ch in "/\\." or 0xD800 <= code <= 0xDFFF:
            continue
        refused = unsafe_file_name_reason(f"a{ch}b.csv") == "the name contains a control character"
        assert refused == (unicodedata.category(ch) == "Cc"), hex(code)


def test_a_file_format_follows_its_suffix_as_pathlib_reads_it():
    names = ["a.csv", "A.CSV", "a.b.parquet", ".csv", "a.", "a..jsonl", "csv", "a.csv.", "x.Json"]
    for formats in (["csv"], ["json", "jsonl"], ["parquet"]):
        ds = Dataset(name="any", formats=formats, columns=[{"name": "a"}])
        for name in names:
            fmt = FILE_EXTENSIONS.get(Path(name).suffix.lower())
            assert ds.accepts(name) == (fmt if fmt in formats else None), name


def test_a_listing_refuses_control_characters_in_folders_and_files_alike(tmp_path, decls):
    root = tmp_path / "drive"
    good = root / "datasets" / "market" / "2024-06-01"
    good.mkdir(parents=True)
    (good / "a.csv").write_text("x\n")
    (good / "b\x7f.csv").write_text("x\n")
    bad = root / "datasets" / "market" / "2024-06-02\x85"
    bad.mkdir(parents=True)
    (bad / "c.csv").write_text("x\n")
    found = discover(LocalDrive(root), decls)
    vf = found.versions["market/2024-06-01"]
    assert [item.name for item, _ in vf.files] == ["a.csv"]
    assert [p.reason for p in vf.rejected] == ["the name contains a control character"]
    refused = {p.path: p.reason for p in found.problems}
    assert refused["datasets/market/2024-06-02\x85"] == "the name contains a control character"
    assert (
        refused["datasets/market/2024-06-02\x85/c.csv"] == "the name contains a control character"
    )
