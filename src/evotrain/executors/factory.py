"""Pick the executor a campaign runs on: `--executor local|slurm`, else `[executor] kind` in campaign.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from evotrain.errors import ConfigError
from evotrain.executors.local import LocalExecutor
from evotrain.executors.protocol import Executor
from evotrain.executors.slurm import SlurmConfig, SlurmExecutor

ExecutorKind = Literal["local", "slurm"]
EXECUTOR_KINDS: tuple[str, ...] = get_args(ExecutorKind)


class ExecutorSettings(BaseModel):
    """`[executor]` in campaign.toml: which executor `evotrain run` uses by default, and its settings."""

    model_config = ConfigDict(extra="forbid")

    kind: ExecutorKind = "local"
    slurm: SlurmConfig = SlurmConfig()


def build_executor(
    name: str | None, settings: ExecutorSettings | None = None, *, config_path: Path | None = None
) -> Executor:
    """The executor called `name` (None: the one `settings` names), configured from `settings`."""
    settings = settings or ExecutorSettings()
    kind = name or settings.kind
    if kind == "local":
        return LocalExecutor()
    if kind == "slurm":
        return SlurmExecutor(settings.slurm, config_path=config_path)
    raise ConfigError(
        f"unknown executor {kind!r}",
        path=config_path,
        fix=f"use one of: {', '.join(EXECUTOR_KINDS)}",
    )
