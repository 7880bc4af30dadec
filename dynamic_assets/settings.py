"""One settings object, read from the environment: the only place that picks embedded or production.

| variable | meaning | default |
|---|---|---|
| DYNAMIC_ASSETS_HOME | state folder (embedded Postgres, MLflow store, keys) | ./.dynamic_assets |
| DYNAMIC_ASSETS_DRIVE | local drive root (the folder laid out like OneDrive) | $HOME_FOLDER/onedrive/DynamicCapital/ai-training |
| DYNAMIC_ASSETS_CONFIG | the dataset/model declarations file | ./dynamic_assets.yaml, else the packaged demo |
| SUPABASE_DB_URL | Postgres connection string (secret) | unset: embedded Postgres under the home folder |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dynamic_assets.config import DEMO_CONFIG

DEFAULT_DRIVE_ROOT = "DynamicCapital/ai-training"


@dataclass(frozen=True)
class Settings:
    home: Path
    drive_root: Path
    config_path: Path
    db_url_set: bool

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("DYNAMIC_ASSETS_HOME") or ".dynamic_assets").expanduser().absolute()
        drive = env.get("DYNAMIC_ASSETS_DRIVE")
        drive_root = (
            Path(drive).expanduser().absolute() if drive else home / "onedrive" / DEFAULT_DRIVE_ROOT
        )
        config = env.get("DYNAMIC_ASSETS_CONFIG")
        if config:
            config_path = Path(config).expanduser().absolute()
        else:
            local = Path("dynamic_assets.yaml").absolute()
            config_path = local if local.exists() else DEMO_CONFIG
        return cls(
            home=home,
            drive_root=drive_root,
            config_path=config_path,
            db_url_set=bool(env.get("SUPABASE_DB_URL")),
        )

    @property
    def writable_config_path(self) -> Path:
        """Where `declare` writes: the configured file, never the packaged demo."""
        if self.config_path == DEMO_CONFIG:
            return Path("dynamic_assets.yaml").absolute()
        return self.config_path

    @property
    def pgdata(self) -> Path:
        return self.home / "postgres"
