"""Resources for the external systems, and the one place that picks embedded or production."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from dynamic_assets.db import Database
from dynamic_assets.defs.training.resources import MlflowResource, build_mlflow_resource
from dynamic_assets.drive import Drive, LocalDrive
from dynamic_assets.settings import Settings


class PostgresResource(dg.ConfigurableResource):
    """The training datastore: a Supabase/Postgres URL, or the embedded PostgreSQL in `pgdata`."""

    url: str | None = Field(
        default=None, description="Connection string (secret: give it as an EnvVar)."
    )
    pgdata: str | None = Field(default=None, description="Data folder of the embedded PostgreSQL.")

    def database(self) -> Database:
        url = self.url.get_value() if isinstance(self.url, dg.EnvVar) else self.url
        return Database(url or None, pgdata=Path(self.pgdata) if self.pgdata else None)


class DriveResource(dg.ConfigurableResource):
    """The drive that collaborators drop files into: a local folder with the OneDrive layout
    (`kind="local"`), or the team's OneDrive through Microsoft Graph (`kind="onedrive"`)."""

    root: str = Field(
        description="Drive root: the folder holding datasets/, model-checkpoints/, ... "
        "(local: a folder on disk; onedrive: a folder inside the drive)"
    )
    kind: str = Field(default="local", description="local | onedrive")
    tenant_id: str | None = Field(default=None, description="onedrive: Entra tenant id.")
    client_id: str | None = Field(default=None, description="onedrive: app (client) id.")
    client_secret: str | None = Field(
        default=None, description="onedrive, app-only: client secret (give it as an EnvVar)."
    )
    drive_id: str | None = Field(default=None, description="onedrive: drive id.")
    user: str | None = Field(default=None, description="onedrive: a user's OneDrive instead.")
    graph_url: str | None = Field(default=None, description="onedrive: Graph base URL.")
    authority_host: str | None = Field(default=None, description="onedrive: sign-in host.")
    graph_scope: str | None = Field(
        default=None,
        description="onedrive: scope of Graph tokens; unset: the resource of the Graph cloud.",
    )
    token_cache: str | None = Field(
        default=None, description="onedrive, delegated: MSAL token cache file."
    )
    postgres: PostgresResource | None = Field(
        default=None,
        description="onedrive: the database that records Graph throttling and delta resyncs "
        "(public.sync_events) wherever the drive is used.",
    )

    def get(self) -> Drive:
        if self.kind == "local":
            return LocalDrive(self.root)
        if self.kind == "onedrive":
            from dynamic_assets.drive.graph import GraphConfig, graph_drive

            secret = (
                self.client_secret.get_value()
                if isinstance(self.client_secret, dg.EnvVar)
                else self.client_secret
            )
            from dynamic_assets.drive.sync_events import recording

            drive = graph_drive(
                GraphConfig.with_defaults(
                    tenant_id=self.tenant_id or "",
                    client_id=self.client_id or "",
                    client_secret=secret or None,
                    drive_id=self.drive_id,
                    user=self.user,
                    root=self.root,
                    token_cache=self.token_cache,
                    graph_url=self.graph_url,
                    authority_host=self.authority_host,
                    graph_scope=self.graph_scope,
                )
            )
            return recording(drive, self.postgres.database()) if self.postgres else drive
        raise ValueError(f"unknown drive kind {self.kind!r}: use local or onedrive")


@dataclass(frozen=True)
class Resources:
    """The code location's resources, each with its own type (the CLI uses them directly)."""

    postgres: PostgresResource
    drive: DriveResource
    mlflow: MlflowResource

    @classmethod
    def from_settings(cls, settings: Settings) -> Resources:
        if settings.db_url_set:
            postgres = PostgresResource(url=dg.EnvVar("SUPABASE_DB_URL"))
        else:
            postgres = PostgresResource(pgdata=str(settings.pgdata))
        return cls(
            postgres=postgres,
            drive=_drive_resource(settings, postgres),
            mlflow=build_mlflow_resource(settings),
        )

    def by_key(self) -> dict[str, dg.ConfigurableResource]:
        """The resources by the key assets and sensors require them under."""
        return {"postgres": self.postgres, "drive": self.drive, "mlflow": self.mlflow}


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources of `Definitions`, by key."""
    return Resources.from_settings(settings).by_key()


def _drive_resource(settings: Settings, postgres: PostgresResource) -> DriveResource:
    od = settings.onedrive
    if od is None:
        return DriveResource(root=str(settings.drive_root))
    return DriveResource(
        kind="onedrive",
        root=od.root,
        tenant_id=od.tenant_id,
        client_id=od.client_id,
        client_secret=dg.EnvVar("ONEDRIVE_CLIENT_SECRET") if od.client_secret_set else None,
        drive_id=od.drive_id,
        user=od.user,
        graph_url=od.graph_url,
        authority_host=od.authority_host,
        graph_scope=od.graph_scope,
        token_cache=str(od.token_cache),
        postgres=postgres,
    )
