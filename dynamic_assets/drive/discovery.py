"""What is in the drive: dataset version folders, their data files, and what the pipeline refuses.

Listing only: names, sizes and eTags, never file contents, so a sensor tick over a large drive
stays fast. The layout is `datasets/<dataset>/<version>/<file>`.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dynamic_assets.declarations.model import FILE_EXTENSIONS, Declarations
from dynamic_assets.declarations.names import (
    is_version,
    looks_like_version,
    printable,
    unsafe_file_name_reason,
    version_name_reason,
    version_sort_key,
)
from dynamic_assets.drive.base import DriveItem, Listing

DATASETS_FOLDER = "datasets"
DOC_SUFFIXES = (".md", ".txt")


@dataclass(frozen=True)
class Problem:
    """A file or folder the pipeline will not take, and why (in plain words)."""

    path: str
    reason: str
    status: str  # undeclared | quarantined (refused) | ignored (passed over, said so)
    dataset: str | None = None
    version: str | None = None
    item: DriveItem | None = None

    @property
    def message(self) -> str:
        return f"{printable(self.path)}: {self.reason}"


@dataclass
class VersionFolder:
    dataset: str
    version: str
    folder: str
    files: list[tuple[DriveItem, str]] = field(default_factory=list)  # (item, format)
    rejected: list[Problem] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.version}"

    @property
    def digest(self) -> str:
        """Changes when any file of the version is added, removed or changed."""
        h = hashlib.sha1()
        for item, _ in sorted(self.files, key=lambda f: f[0].path):
            h.update(
                f"{item.path}\x00{item.size}\x00{item.etag}\n".encode("utf-8", "surrogateescape")
            )
        for p in sorted(self.rejected, key=lambda p: p.path):
            etag = p.item.etag if p.item else ""
            h.update(f"!{p.path}\x00{etag}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:16]

    @property
    def bytes(self) -> int:
        return sum(item.size for item, _ in self.files)


@dataclass
class Discovery:
    versions: dict[str, VersionFolder] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    items_listed: int = 0
    # The folder `discover` listed whole, and the path of every item below it: a recorded file
    # under `listed` that `paths` does not hold is gone from the drive. None when the versions
    # were put together otherwise (one version folder, a delta page): nothing is known gone.
    listed: str | None = None
    paths: set[str] = field(default_factory=set)
    # Files found deleted from the drive, and versions left without any file (status `deleted`),
    # as `datasets.deletions` reports them.
    deleted: list[Problem] = field(default_factory=list)

    def for_dataset(self, dataset: str) -> list[VersionFolder]:
        found = [v for v in self.versions.values() if v.dataset == dataset]
        return sorted(found, key=lambda v: version_sort_key(v.version))


def discover(
    drive: Listing, decls: Declarations, *, dataset: str | None = None, version: str | None = None
) -> Discovery:
    """List the drive's dataset folders (or one dataset, or one version) and classify every item."""
    declared = decls.by_name()
    folder = DATASETS_FOLDER
    if dataset:
        folder += f"/{dataset}"
        if version:
            folder += f"/{version}"
    out = Discovery(listed=folder)
    names = _Names(declared)
    paths = out.paths
    listed = 0
    with _collection_paused():
        for item in drive.list_tree(folder):
            listed += 1
            paths.add(item.path)
            _classify(item, declared, out, names)
    out.items_listed = listed
    if dataset and version:
        # The version folder itself: known even when it is empty.
        key = f"{dataset}/{version}"
        if key not in out.versions and dataset in declared and is_version(version):
            out.versions[key] = VersionFolder(dataset, version, folder)
    for v in out.versions.values():
        if not v.files and not v.rejected:
            out.problems.append(
                Problem(
                    v.folder,
                    "the version folder holds no data files",
                    "quarantined",
                    v.dataset,
                    v.version,
                )
            )
    return out


@contextmanager
def _collection_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a listing runs: the listing keeps an object or
    two per item and makes no reference cycles, and each collection on the way would walk every
    object of the process again (references are still counted and freed as usual)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Names:
    """The verdicts on the names of one listing, each name judged once: every file of a version
    repeats its dataset's and its version's names, and file names repeat across versions."""

    def __init__(self, declared: dict) -> None:
        self.declared = declared
        self.unsafe: dict[str, str | None] = {}
        self.version: dict[str, str | None] = {}
        self.folders: dict[str, tuple[str, str] | None] = {}
        self.formats: dict[tuple[str, str], str | None] = {}

    def unsafe_reason(self, name: str) -> str | None:
        try:
            return self.unsafe[name]
        except KeyError:
            reason = self.unsafe[name] = unsafe_file_name_reason(name)
            return reason

    def version_reason(self, version: str) -> str | None:
        try:
            return self.version[version]
        except KeyError:
            reason = self.version[version] = version_name_reason(version)
            return reason

    def version_folder(self, folder: str) -> tuple[str, str] | None:
        """(dataset, version) when `folder` is `datasets/<dataset>/<version>` of a declared
        dataset, a valid version and safe, visible names: a file directly in it is judged by its
        own name alone. None for any other folder."""
        try:
            return self.folders[folder]
        except KeyError:
            pass
        parts = folder.split("/")
        found = None
        if (
            len(parts) == 3
            and parts[0] == DATASETS_FOLDER
            and parts[1] in self.declared
            and "/." not in folder
            and self.unsafe_reason(parts[1]) is None
            and self.unsafe_reason(parts[2]) is None
            and self.version_reason(parts[2]) is None
        ):
            found = (parts[1], parts[2])
        self.folders[folder] = found
        return found

    def file_format(self, dataset: str, name: str) -> str | None:
        """The declared format of file `name` (not starting with a dot) in `dataset`, judged once
        per extension: the extension is what `os.path.splitext` gives for such a name."""
        dot = name.rfind(".")
        key = (dataset, name[dot:] if dot > 0 else "")
        try:
            return self.formats[key]
        except KeyError:
            fmt = self.formats[key] = self.declared[dataset].accepts(name)
            return fmt


def _classify(item: DriveItem, declared: dict, out: Discovery, names: _Names) -> None:
    if not item.is_folder:
        folder, _, name = item.path.rpartition("/")
        version_folder = names.version_folder(folder)
        if version_folder is not None:  # most files: only their own name is left to judge
            _classify_version_file(item, name, *version_folder, out, names)
            return
    parts = item.path.split("/")
    if len(parts) < 2 or parts[0] != DATASETS_FOLDER:
        return
    for name in parts[1:]:
        reason = names.unsafe_reason(name)
        if reason:
            ds = parts[1] if len(parts) > 2 and parts[1] in declared else None
            ver = parts[2] if ds and len(parts) > 3 and is_version(parts[2]) else None
            if ds and ver:
                vf = _version(out, ds, ver)
                vf.rejected.append(Problem(item.path, reason, "quarantined", ds, ver, item))
            else:
                out.problems.append(Problem(item.path, reason, "quarantined", ds, ver, item))
            return
    if "/." in item.path:  # a name below `datasets/` starting with a dot
        return  # hidden files: partial uploads, editor droppings
    dataset = parts[1]
    if dataset not in declared:
        if not item.is_folder:
            # The path says which version the file belongs to: its row carries it, so the file is
            # taken with its version once the dataset is declared.
            in_version = len(parts) > 3 and is_version(parts[2])
            if in_version and len(parts) == 4 and parts[3].lower().endswith(DOC_SUFFIXES):
                return  # documents the version, as in a declared dataset
            out.problems.append(
                Problem(
                    item.path,
                    f"dataset {dataset!r} is not declared (run `dynamic-assets declare {dataset} --from <folder>`)",
                    "undeclared",
                    dataset,
                    parts[2] if in_version else None,
                    item,
                )
            )
        return
    if len(parts) in (2, 3) and not item.is_folder:
        out.problems.append(
            Problem(
                item.path,
                "files belong in a version folder, not directly in the dataset folder",
                "ignored",
                dataset,
                None,
                item,
            )
        )
        return
    if len(parts) == 2:
        return
    version = parts[2]
    refused = names.version_reason(version)
    if refused:
        # A name written as a version (`v01.00`, `2030-02-30`, other digits, a trailing space) is
        # refused like a bad file; any other folder name is passed over, and said so.
        status = "quarantined" if looks_like_version(version) else "ignored"
        if not item.is_folder or len(parts) == 3:
            out.problems.append(Problem(item.path, refused, status, dataset, None, item))
        return
    vf = _version(out, dataset, version)
    if len(parts) == 3:
        return  # the version folder itself
    if item.is_folder or len(parts) > 4:
        if not item.is_folder:
            vf.rejected.append(
                Problem(
                    item.path,
                    "nested folders inside a version are not read",
                    "ignored",
                    dataset,
                    version,
                    item,
                )
            )
        return
    _classify_version_file(item, parts[3], dataset, version, out, names)


def _classify_version_file(
    item: DriveItem, name: str, dataset: str, version: str, out: Discovery, names: _Names
) -> None:
    """A file directly in a version folder whose own names passed (`_Names.version_folder`)."""
    reason = names.unsafe_reason(name)
    if reason:
        vf = _version(out, dataset, version)
        vf.rejected.append(Problem(item.path, reason, "quarantined", dataset, version, item))
        return
    if name[0] == ".":
        return  # hidden files: partial uploads, editor droppings
    vf = _version(out, dataset, version)
    if name.lower().endswith(DOC_SUFFIXES):
        return  # README.md and notes document the version
    fmt = names.file_format(dataset, name)
    if fmt is None:
        ds = names.declared[dataset]
        ext = name.rsplit(".", 1)[-1] if "." in name else "(none)"
        known = FILE_EXTENSIONS.get("." + ext.lower())
        reason = (
            f"format {known} is not declared for dataset {dataset} (declared: {', '.join(ds.formats)})"
            if known
            else f"unknown file format (extension {ext!r}); expected one of {', '.join(ds.formats)}"
        )
        vf.rejected.append(Problem(item.path, reason, "quarantined", dataset, version, item))
        return
    vf.files.append((item, fmt))


def _version(out: Discovery, dataset: str, version: str) -> VersionFolder:
    key = f"{dataset}/{version}"
    vf = out.versions.get(key)
    if vf is None:
        vf = out.versions[key] = VersionFolder(
            dataset, version, f"{DATASETS_FOLDER}/{dataset}/{version}"
        )
    return vf
