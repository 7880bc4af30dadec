"""Resources for the external systems, and the one place that picks embedded or production."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from dynamic_assets.db import Database
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
    """The drive that collaborators drop files into: a local folder with the OneDrive layout."""

    root: str = Field(
        description="Drive root: the folder holding datasets/, model-checkpoints/, ..."
    )

    def get(self) -> Drive:
        return LocalDrive(self.root)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    if settings.db_url_set:
        postgres = PostgresResource(url=dg.EnvVar("SUPABASE_DB_URL"))
    else:
        postgres = PostgresResource(pgdata=str(settings.pgdata))
    return {"postgres": postgres, "drive": DriveResource(root=str(settings.drive_root))}
