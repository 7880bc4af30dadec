"""The storage plan (`storage:`) and a dataset's lifecycle policy (`datasets[].lifecycle`).

    storage:
      core: {budget_mb: 500, warn_at: 0.8, critical_at: 0.9}   # the Supabase database
      main: {url_env: MAIN_DB_URL}                              # optional: a second Postgres
      archive: {folder: archive}                                # in the drive, next to datasets/
    datasets:
      - name: market
        lifecycle: {hot_versions: 3, main_days: 365, archive_after_days: 1095,
                    delete_after_days: 2555, legal_hold: false}

Without a `storage:` block the plan is a 500 MB core and an archive in the drive's `archive/`
folder; a dataset without `lifecycle` keeps every version in core unless core goes critical.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


class CoreTier(BaseModel):
    """The core database and its budget: `warn_at` and `critical_at` are fractions of it."""

    model_config = ConfigDict(extra="forbid")

    budget_mb: float = Field(default=500, gt=0)
    warn_at: float = Field(default=0.8, gt=0, le=1)
    critical_at: float = Field(default=0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> CoreTier:
        if self.warn_at >= self.critical_at:
            raise ValueError(
                f"storage.core: warn_at ({self.warn_at}) must be below critical_at "
                f"({self.critical_at})"
            )
        return self

    @property
    def budget_bytes(self) -> int:
        return int(self.budget_mb * 1024 * 1024)


class MainTier(BaseModel):
    """A second Postgres, reached through the URL in the environment variable `url_env`."""

    model_config = ConfigDict(extra="forbid")

    url_env: str = "MAIN_DB_URL"

    @field_validator("url_env")
    @classmethod
    def _env(cls, v: str) -> str:
        if not ENV_NAME.fullmatch(v):
            raise ValueError(f"url_env {v!r} is not an environment variable name (MAIN_DB_URL)")
        return v


class ArchiveTier(BaseModel):
    """The archive: a folder of the drive, next to `datasets/`."""

    model_config = ConfigDict(extra="forbid")

    folder: str = "archive"

    @field_validator("folder")
    @classmethod
    def _folder(cls, v: str) -> str:
        parts = v.strip("/").split("/")
        if not v.strip("/") or any(p in ("", ".", "..") for p in parts) or "\\" in v:
            raise ValueError(f"archive folder {v!r} must be a plain path inside the drive")
        if parts[0] == "datasets":
            raise ValueError(f"archive folder {v!r} may not lie inside datasets/")
        return "/".join(parts)


class Storage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    core: CoreTier = Field(default_factory=CoreTier)
    main: MainTier | None = None
    archive: ArchiveTier = Field(default_factory=ArchiveTier)


class Lifecycle(BaseModel):
    """Where a dataset's versions live as they age (days since curated). `hot_versions`: the
    newest N versions stay in core whatever their age; `legal_hold`: nothing is ever deleted."""

    model_config = ConfigDict(extra="forbid")

    hot_versions: int = Field(default=3, ge=1)
    main_days: int | None = Field(default=None, gt=0)
    archive_after_days: int | None = Field(default=None, gt=0)
    delete_after_days: int | None = Field(default=None, gt=0)
    legal_hold: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Lifecycle:
        if (
            self.delete_after_days is not None
            and self.archive_after_days is not None
            and self.delete_after_days < self.archive_after_days
        ):
            raise ValueError(
                f"lifecycle: delete_after_days ({self.delete_after_days}) comes before "
                f"archive_after_days ({self.archive_after_days})"
            )
        return self
