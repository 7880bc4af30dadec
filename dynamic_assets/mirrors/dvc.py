"""DVC metafiles of curated versions, so that `dvc pull` in the team's code repository fetches them.

For a declared `kind: dvc` platform (`repo_path`, `remote`: an S3 platform) each mirrored version
gets

- the exported Parquet (`export.export_version`, the same bytes as the S3 mirror) at the remote's
  content-addressed key `<prefix>/files/md5/<md5[:2]>/<md5[2:]>` (DVC 3's layout, `hash: md5`:
  the MD5 of the file's bytes);
- a metafile `<repo_path>/datasets/<dataset>/<dataset>_<version>.parquet.dvc`:

      outs:
      - md5: <md5>
        size: <bytes>
        hash: md5
        path: <dataset>_<version>.parquet

  with the data file's name added to the `.gitignore` beside it;
- the remote's section of `<repo_path>/.dvc/config` (`['remote "<remote>"']`, `url =
  s3://<bucket>/<prefix>`, `endpointurl` when declared), the repository's default remote when it
  has none. Credentials are never written: DVC reads `AWS_ACCESS_KEY_ID` /
  `AWS_SECRET_ACCESS_KEY` from the environment.
"""

from __future__ import annotations

import configparser
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.declarations.platforms import DvcPlatform, S3Platform, declared_platform
from dynamic_assets.mirrors import s3
from dynamic_assets.mirrors.export import PARQUET_MEDIA_TYPE, export_version
from dynamic_assets.mirrors.publish import record_location, registered_version, s3_platform

READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class DvcTracked:
    platform: str
    dataset: str
    version: str
    metafile: Path
    url: str  # the object on the remote
    md5: str
    size_bytes: int
    uploaded: bool


def dvc_platform(decls: Declarations, name: str) -> DvcPlatform:
    return declared_platform(decls.platforms, name, DvcPlatform)


def data_name(dataset: str, version: str) -> str:
    return f"{dataset}_{version}.parquet"


def metafile_path(repo: Path, dataset: str, version: str) -> Path:
    return repo / "datasets" / dataset / f"{data_name(dataset, version)}.dvc"


def cache_key(remote: S3Platform, md5: str) -> str:
    """The remote's content-addressed key of a file with this MD5 (DVC 3: `files/md5/`)."""
    return f"{remote.prefix}/files/md5/{md5[:2]}/{md5[2:]}"


def metafile_text(md5: str, size: int, path: str) -> str:
    return yaml.safe_dump(
        {"outs": [{"md5": md5, "size": size, "hash": "md5", "path": path}]}, sort_keys=False
    )


def remote_section(remote_name: str) -> str:
    return f"'remote \"{remote_name}\"'"


def write_config(repo: Path, remote_name: str, remote: S3Platform) -> Path:
    """Set the remote's section of `<repo>/.dvc/config`, keeping every other section."""
    path = repo / ".dvc" / "config"
    path.parent.mkdir(parents=True, exist_ok=True)
    config = configparser.ConfigParser(interpolation=None)
    if path.exists():
        config.read(path, encoding="utf-8")
    section = remote_section(remote_name)
    values = {"url": f"s3://{remote.bucket}/{remote.prefix}"}
    if remote.endpoint_url:
        values["endpointurl"] = remote.endpoint_url.rstrip("/")
    if remote.region:
        values["region"] = remote.region
    config[section] = values
    if not config.has_section("core"):
        config["core"] = {}
    config["core"].setdefault("remote", remote_name)
    with path.open("w", encoding="utf-8") as out:
        config.write(out)
    return path


def _ignore(folder: Path, name: str) -> None:
    path = folder / ".gitignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    entry = f"/{name}"
    if entry not in lines:
        path.write_text("\n".join([*lines, entry]) + "\n", encoding="utf-8")


def track_version(
    db: Database,
    decls: Declarations,
    dataset: str,
    version: str,
    name: str,
    *,
    base: Path,
    environ: Mapping[str, str] | None = None,
) -> DvcTracked:
    """Put `dataset` `version` on the DVC platform `name`'s remote and write its metafile and the
    remote's config in the repository (`repo_path`, relative to `base`)."""
    platform = dvc_platform(decls, name)
    remote = s3_platform(decls, platform.remote)
    repo = (base / platform.repo_path).resolve()
    where = f"mirror {name}: {dataset} {version}"
    with db.connect() as conn:
        try:
            fingerprint, columns = registered_version(conn, dataset, version)
        except LookupError as exc:
            raise s3.MirrorError(f"{where}: {exc}; nothing to track") from exc
    if not repo.is_dir():
        raise s3.MirrorError(f"{where}: repo_path {repo} is not a folder")
    try:
        client = s3.s3_client(platform.remote, remote, environ)
        with export_version(db, dataset, version, columns, fingerprint=fingerprint) as out:
            md5 = hashlib.md5(usedforsecurity=False)
            for chunk in iter(lambda: out.file.read(READ_CHUNK), b""):
                md5.update(chunk)
            out.file.seek(0)
            digest = md5.hexdigest()
            key = cache_key(remote, digest)
            uploaded = s3.put_file(
                client,
                remote,
                key,
                out.file,
                out.sha256,
                out.size_bytes,
                content_type=PARQUET_MEDIA_TYPE,
            )
            sha256, size = out.sha256, out.size_bytes
    except s3.MirrorError:
        raise
    except Exception as exc:
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, ClientError | BotoCoreError):
            raise
        raise s3.MirrorError(
            f"{where} (remote {platform.remote}, s3://{remote.bucket}/{remote.prefix}): "
            f"{s3.refusal(exc)}"
        ) from None
    metafile = metafile_path(repo, dataset, version)
    metafile.parent.mkdir(parents=True, exist_ok=True)
    metafile.write_text(metafile_text(digest, size, data_name(dataset, version)), encoding="utf-8")
    _ignore(metafile.parent, data_name(dataset, version))
    write_config(repo, platform.remote, remote)
    url = s3.location(remote, key)
    with db.connect() as conn:
        record_location(
            conn,
            dataset,
            version,
            name,
            {
                "url": url,
                "metafile": str(metafile.relative_to(repo)),
                "md5": digest,
                "sha256": sha256,
                "size_bytes": size,
                "fingerprint": fingerprint,
            },
        )
    return DvcTracked(name, dataset, version, metafile, url, digest, size, uploaded)
