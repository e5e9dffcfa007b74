"""`campaign.toml`: what `init` fixed for the whole campaign (seed, hashes, the external target)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evotrain.executors.factory import ExecutorSettings
from evotrain.external.config import ExternalConfig
from evotrain.fileio import atomic_write_text
from evotrain.substrate.spec import format_validation_error, parse_toml


class RunDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: Annotated[int, Field(ge=1)] = 4
    parallel: Annotated[int, Field(ge=1)] = 2
    keep_going: bool = False  # go on after a round in which no candidate succeeded (default: stop the campaign)


class TrackingConfig(BaseModel):
    """[tracking]: where `run` logs the campaign as it goes (docs/tracking.md)."""

    model_config = ConfigDict(extra="forbid")

    mlflow: str | None = None  # an MLflow tracking URI, e.g. "sqlite:///abs/path/mlflow.db" or "http://host:5000"


class CampaignConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    seed: int = 0
    created_at: str
    evotrain_version: str
    substrate_source: str
    substrate_sha256: str
    constitution_sha256: str
    external: ExternalConfig | None = None
    run: RunDefaults = RunDefaults()
    executor: ExecutorSettings | None = None  # [executor]: kind = "slurm" and [executor.slurm]
    tracking: TrackingConfig | None = None


def load_config(path: Path) -> CampaignConfig:
    data = parse_toml(path)
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(path, err) from None


def save_config(path: Path, config: CampaignConfig) -> None:
    text = tomlkit.dumps(config.model_dump(exclude_none=True))
    atomic_write_text(path, text)
