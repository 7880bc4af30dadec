"""The state of each curated version on each declared S3 platform, for `status`.

- `mirrored`: the store holds the object placed for the version's fingerprint (same size, SHA-256
  metadata and ETag as when it was placed);
- `missing`: not mirrored yet, mirrored with an older fingerprint, or the object is gone;
- `changed`: the object at the key is not the one placed (another size, SHA-256 or ETag): it
  changed in the mirror behind our back;
- `failed`: the last mirror of the version failed (its reason kept in `public.mirror_failures`),
  or the store could not be asked.

One HEAD request per mirrored object, with a single attempt: a look, not a repair.

On a DVC platform (given the folder its `repo_path` is relative to), a version is `mirrored` when
the repository holds its `.dvc` metafile naming the MD5 and size recorded when it was tracked,
`missing` when it is not tracked yet, tracks an older fingerprint or its metafile is gone, and
`changed` when the metafile names other bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.declarations.names import version_sort_key
from dynamic_assets.declarations.platforms import DvcPlatform, S3Platform
from dynamic_assets.mirrors import s3

STATES = ("mirrored", "missing", "changed", "failed")


@dataclass(frozen=True)
class MirrorState:
    dataset: str
    version: str
    platform: str
    state: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def problem(self) -> bool:
        return self.state in ("changed", "failed")


def mirror_states(
    db: Database,
    decls: Declarations,
    *,
    environ: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> list[MirrorState]:
    """Every fingerprinted curated version of a declared dataset on every declared S3 platform,
    and with `base` (the folder DVC `repo_path`s are relative to) on every DVC platform, ordered
    by dataset, version and platform."""
    platforms: dict[str, S3Platform | DvcPlatform] = {
        n: p
        for n, p in decls.platforms.items()
        if isinstance(p, S3Platform) or (base is not None and isinstance(p, DvcPlatform))
    }
    datasets = [d.name for d in decls.datasets]
    if not platforms or not datasets:
        return []
    with db.connect() as conn:
        versions = conn.execute(
            "SELECT name, version, fingerprint, platform_locations FROM public.datasets "
            "WHERE status = 'curated' AND fingerprint IS NOT NULL AND name = ANY(%s)",
            (datasets,),
        ).fetchall()
        failures = {
            (r[0], r[1], r[2]): r[3]
            for r in conn.execute(
                "SELECT platform, dataset, version, reason FROM public.mirror_failures"
            ).fetchall()
        }
        placed = {
            (r[0], r[1], r[2]): (r[3], r[4], r[5])
            for r in conn.execute(
                "SELECT platform, object_key, sha256, size_bytes, etag, fingerprint "
                "FROM public.mirror_objects"
            ).fetchall()
        }
    clients: dict[str, Any] = {}
    out = []
    for dataset, version, fingerprint, locations in sorted(
        versions, key=lambda r: (r[0], version_sort_key(r[1]))
    ):
        for name, platform in platforms.items():
            failed = failures.get((name, dataset, version))
            entry = (locations or {}).get(name)
            if failed is not None:
                state, detail = "failed", failed
            elif not isinstance(entry, dict):
                state, detail = "missing", "not mirrored yet"
            elif entry.get("fingerprint") != fingerprint:
                state, detail = "missing", "the mirror holds an older fingerprint: mirror it again"
            elif isinstance(platform, DvcPlatform):
                assert base is not None  # DVC platforms are looked at with their base only
                state, detail = _look_dvc((base / platform.repo_path).resolve(), entry)
            else:
                state, detail = _look(clients, name, platform, entry, placed, environ)
            out.append(MirrorState(dataset, version, name, state, detail))
    return out


def _look(
    clients: dict[str, Any],
    name: str,
    platform: S3Platform,
    entry: dict[str, Any],
    placed: dict[tuple[str, str, str], tuple[int, str | None, str]],
    environ: Mapping[str, str] | None,
) -> tuple[str, str]:
    url = str(entry.get("url", ""))
    key = url.removeprefix(f"s3://{platform.bucket}/")
    try:
        if name not in clients:
            clients[name] = s3.s3_client(name, platform, environ, attempts=1)
        found = s3.head(clients[name], platform.bucket, key)
    except Exception as exc:
        return "failed", f"the store could not be asked: {s3.refusal(exc)}"
    if found is None:
        return "missing", f"{url} is gone from the store"
    size = int(found.get("ContentLength", -1))
    sha = found.get("Metadata", {}).get("sha256")
    want = placed.get((name, key, str(entry.get("sha256"))))
    etag_changed = want is not None and want[1] is not None and found.get("ETag") != want[1]
    if size != entry.get("size_bytes") or sha != entry.get("sha256") or etag_changed:
        return "changed", f"{url} is not the object placed: it changed in the mirror"
    return "mirrored", url


def _look_dvc(repo: Path, entry: dict[str, Any]) -> tuple[str, str]:
    metafile = repo / str(entry.get("metafile", ""))
    if not entry.get("metafile") or not metafile.is_file():
        return "missing", f"{metafile} is gone from the repository"
    try:
        outs = (yaml.safe_load(metafile.read_text(encoding="utf-8")) or {}).get("outs") or [{}]
        named = (str(outs[0].get("md5")), outs[0].get("size"))
    except (yaml.YAMLError, AttributeError, UnicodeDecodeError):
        named = ("", None)
    if named != (entry.get("md5"), entry.get("size_bytes")):
        return "changed", f"{metafile} names other bytes than were tracked"
    return "mirrored", f"{metafile} ({entry.get('url')})"
