"""What identifies a training run: the hash of the model's configuration, the commit of the
training code, and the tags a run carries in MLflow. A run is made again only when the data's
fingerprint or the configuration hash changes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from functools import cache
from pathlib import Path

from dynamic_assets.declarations.model import Model


def config_hash(model: Model) -> str:
    """SHA-256 of everything in the declaration that changes the trained model or its score
    (not its description, owners or version selection)."""
    data = model.model_dump(mode="json", exclude={"description", "owners", "versions"})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@cache
def git_commit() -> tuple[str, bool]:
    """The commit of the training code and whether the working tree has uncommitted changes.

    `DYNAMIC_ASSETS_GIT_COMMIT` wins (for deployments without a .git folder); otherwise git is
    asked about the package's checkout; "unknown" if neither answers.
    """
    env = os.environ.get("DYNAMIC_ASSETS_GIT_COMMIT", "").strip()
    if env:
        return env, False
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit or "unknown", bool(status)


def run_tags(
    model: Model, version: str, fingerprint: str, dagster_run_id: str | None
) -> dict[str, str]:
    """The tags of a training run in MLflow."""
    commit, dirty = git_commit()
    tags = {
        "model": model.name,
        "dataset": model.dataset,
        "dataset_version": version,
        "data_fingerprint": fingerprint,
        "config_hash": config_hash(model),
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "mlflow.source.git.commit": commit,
        "estimator": model.estimator,
    }
    if dagster_run_id:
        tags["dagster_run_id"] = dagster_run_id
    return tags
