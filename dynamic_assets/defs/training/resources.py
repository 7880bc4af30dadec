"""The MLflow resource: a tracking URI (production: `MLFLOW_TRACKING_URI`, an EnvVar since it may
hold credentials) or the local store under the home folder (sqlite, artifacts beside it)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from dynamic_assets.settings import Settings
from dynamic_assets.training.tracking import Tracking

MLFLOW_FOLDER = "mlflow"


class MlflowResource(dg.ConfigurableResource):
    """Where training runs are tracked."""

    tracking_uri: str = Field(
        description="MLflow tracking URI (secret if it holds credentials: give it as an EnvVar)."
    )
    artifact_root: str | None = Field(
        default=None,
        description="Artifact folder of the experiments created here (local store); unset: "
        "the tracking server's default.",
    )

    def tracking(self) -> Tracking:
        uri = (
            self.tracking_uri.get_value()
            if isinstance(self.tracking_uri, dg.EnvVar)
            else self.tracking_uri
        )
        return Tracking(tracking_uri=uri or "", artifact_root=self.artifact_root)

    def describe(self) -> str:
        """Where runs go, fit for logs and metadata (no credentials)."""
        if isinstance(self.tracking_uri, dg.EnvVar):
            return "MLflow at $MLFLOW_TRACKING_URI"
        return f"MLflow at {self.tracking_uri}"


def local_tracking(settings: Settings) -> Tracking:
    """The embedded default: sqlite store and artifacts under `<home>/mlflow`."""
    folder = settings.home / MLFLOW_FOLDER
    return Tracking(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts"))


def build_mlflow_resource(settings: Settings) -> MlflowResource:
    if settings.mlflow_uri_set:
        return MlflowResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"))
    local = local_tracking(settings)
    return MlflowResource(tracking_uri=local.tracking_uri, artifact_root=local.artifact_root)
