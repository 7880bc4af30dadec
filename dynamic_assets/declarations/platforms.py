"""Platforms that mirror curated versions: the `platforms:` section of the declarations file.

    platforms:
      spaces: {kind: s3, endpoint_url: https://nyc3.digitaloceanspaces.com, bucket: ai-project,
               prefix: datasets, region: nyc3}   # models_prefix: models (the default)
      dvc:    {kind: dvc, repo_path: ../ai-project, remote: spaces}

Credentials are never declared: they come from the environment only (`<NAME>_ACCESS_KEY_ID` and
`<NAME>_SECRET_ACCESS_KEY` for the platform `<name>`, else `AWS_ACCESS_KEY_ID` and
`AWS_SECRET_ACCESS_KEY`). A key that looks like a credential is refused without quoting its value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PLATFORM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
CREDENTIAL_KEY = re.compile(r"secret|password|token|access_key|credential", re.IGNORECASE)
# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
PREFIX = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")


def _no_credentials(value: Any) -> Any:
    if isinstance(value, dict):
        named = sorted(str(k) for k in value if CREDENTIAL_KEY.search(str(k)))
        if named:
            raise ValueError(
                f"{', '.join(named)}: credentials are never declared; set them in the environment "
                "(<NAME>_ACCESS_KEY_ID and <NAME>_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY)"
            )
    return value


class S3Platform(BaseModel):
    """An S3-compatible object store (AWS S3, DigitalOcean Spaces, MinIO)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["s3"]
    bucket: str
    endpoint_url: str | None = None
    prefix: str = "datasets"
    # where model checkpoints land: <models_prefix>/<model>/<run-id>/
    models_prefix: str = "models"
    region: str | None = None

    _refuse_credentials = model_validator(mode="before")(_no_credentials)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not BUCKET_NAME.match(v):
            raise ValueError(f"bucket {v!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
        return v

    @field_validator("prefix", "models_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        if not PREFIX.match(v):
            raise ValueError(
                f"prefix {v!r}: use path segments of letters, digits, '_' and '-' (datasets)"
            )
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/@\s]+(:[0-9]+)?/?$", v):
            raise ValueError(
                "endpoint_url is an http(s) URL of a host without user, password or path "
                "(https://nyc3.digitaloceanspaces.com)"
            )
        return v


class DvcPlatform(BaseModel):
    """DVC metafiles in a code repository, whose remote is one of the declared S3 platforms."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["dvc"]
    repo_path: str
    remote: str

    _refuse_credentials = model_validator(mode="before")(_no_credentials)


Platform = Annotated[S3Platform | DvcPlatform, Field(discriminator="kind")]


P = TypeVar("P", S3Platform, DvcPlatform)


def declared_platform(
    platforms: dict[str, S3Platform | DvcPlatform], name: str, kind: type[P]
) -> P:
    """The platform declared as `name`, which must be of `kind`; a KeyError lists those that are."""
    platform = platforms.get(name)
    if not isinstance(platform, kind):
        declared = ", ".join(n for n, p in platforms.items() if isinstance(p, kind))
        label = kind.model_fields["kind"].default
        raise KeyError(
            f"platform {name!r} is not a declared {label} platform; declared: {declared}"
        )
    return platform


def check_platforms(platforms: dict[str, S3Platform | DvcPlatform]) -> None:
    """Refuse platform names that cannot name environment variables, and DVC remotes that are not
    declared S3 platforms."""
    for name, platform in platforms.items():
        if not PLATFORM_NAME.match(name):
            raise ValueError(
                f"platform {name!r}: a platform name is lower-case letters, digits and '_', "
                "starting with a letter (it names the environment variables of its credentials)"
            )
        if isinstance(platform, DvcPlatform):
            remote = platforms.get(platform.remote)
            if not isinstance(remote, S3Platform):
                raise ValueError(
                    f"platform {name!r}: remote {platform.remote!r} is not a declared s3 platform"
                )


def credential_variables(name: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The environment variables of a platform's key id and secret: its own, then AWS_'s."""
    own = name.upper()
    return (
        (f"{own}_ACCESS_KEY_ID", f"{own}_SECRET_ACCESS_KEY"),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    )
