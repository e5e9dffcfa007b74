"""`campaign.toml`: what `init` fixed for the whole campaign (seed, hashes, the external target)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evotrain.errors import ConfigError
from evotrain.executors.factory import ExecutorSettings
from evotrain.fileio import atomic_write_text
from evotrain.substrate.spec import format_validation_error, parse_toml


class CommandTargetConfig(BaseModel):
    """An external target that is a user command: it scores a predictions file and prints a score."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["command"] = "command"
    name: str = "command"
    command: Annotated[str, Field(min_length=1)]  # placeholders: {predictions}, {candidate}
    cwd: str | None = None  # working directory; the folder of the spec file by default
    timeout_s: Annotated[float, Field(gt=0)] = 600.0
    budget: Annotated[int, Field(ge=0)] | None = None  # submissions allowed for the whole campaign


ExternalConfig = CommandTargetConfig


class RunDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: Annotated[int, Field(ge=1)] = 4
    parallel: Annotated[int, Field(ge=1)] = 2


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


def load_config(path: Path) -> CampaignConfig:
    data = parse_toml(path)
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(path, err) from None


def save_config(path: Path, config: CampaignConfig) -> None:
    text = tomlkit.dumps(config.model_dump(exclude_none=True))
    atomic_write_text(path, text)


def parse_external_spec(spec: str) -> ExternalConfig:
    """`--external` takes a TOML file (kind = "command", command = "...", budget = N) or `command:<shell command>`."""
    if spec.startswith("command:"):
        command = spec.removeprefix("command:").strip()
        if not command:
            raise ConfigError("`--external command:` needs a command after the colon", fix="command:<shell command>")
        return CommandTargetConfig(command=command, cwd=str(Path.cwd()))
    path = Path(spec)
    if not path.exists():
        raise ConfigError(
            "external-target spec not found",
            path=path,
            fix='pass a TOML file (kind = "command", command = "...") or `command:<shell command>`',
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path, fix="correct the TOML syntax") from None
    kind = data.get("kind", "command")
    if kind != "command":
        raise ConfigError(
            f"field `kind`: unknown external target {kind!r}",
            path=path,
            fix='use kind = "command" (leaderboard and kaggle targets are not built yet)',
        )
    data.setdefault("cwd", str(path.resolve().parent))
    try:
        return CommandTargetConfig.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(path, err) from None
