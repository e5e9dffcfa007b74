"""Pick the executor a campaign runs on: `--executor local|slurm`, else `[executor] kind` in campaign.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from evotrain.errors import ConfigError
from evotrain.executors.local import LocalExecutor
from evotrain.executors.protocol import Executor, JobRef
from evotrain.executors.slurm import SlurmConfig, SlurmExecutor
from evotrain.executors.stopping import StoppableExecutor

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


def abandon(job: JobRef, settings: ExecutorSettings | None = None, *, config_path: Path | None = None) -> str:
    """Make sure a job recorded by an orchestrator that is gone no longer runs; how it ended, in words."""
    settings = settings or ExecutorSettings()
    if job.executor == "slurm":
        outcome = SlurmExecutor(settings.slurm, config_path=config_path, check=False).cancel_recorded(job)
        return f"slurm job {job.job_id}: {outcome.status}"
    if job.executor == "local":
        LocalExecutor(cpus=1, gpus=[]).recover(job)  # kills what is left of its process group
        return f"local process group {job.data.get('pgid')}: gone"
    raise ConfigError(f"a trace records a job of unknown executor {job.executor!r}", fix="use a matching evotrain")


def build_stoppable(
    name: str | None, settings: ExecutorSettings | None = None, *, config_path: Path | None = None
) -> StoppableExecutor:
    """`build_executor`, wrapped so Ctrl-C/SIGTERM cancels its jobs and jobs of another executor are stopped."""
    inner = build_executor(name, settings, config_path=config_path)
    return StoppableExecutor(inner, abandon_foreign=lambda job: abandon(job, settings, config_path=config_path))
