"""The external targets' configs, each validated when built: a user command, an `evotrain leaderboard serve` server,
Kaggle; `--external` parses a TOML spec (or `command:<shell command>`) into one of them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from evotrain.errors import ConfigError
from evotrain.substrate.spec import format_validation_error


class CommandTargetConfig(BaseModel):
    """An external target that is a user command: it scores a predictions file and prints a score."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["command"] = "command"
    name: str = "command"
    command: Annotated[str, Field(min_length=1)]  # placeholders: {predictions}, {candidate}
    cwd: str | None = None  # working directory; the folder of the spec file by default
    timeout_s: Annotated[float, Field(gt=0)] = 600.0
    budget: Annotated[int, Field(ge=0)] | None = None  # submissions allowed for the whole campaign


class LeaderboardTargetConfig(BaseModel):
    """An `evotrain leaderboard serve` server: labels held by a separate process, a token per campaign.

    The URL and the token come from the config or, better, from environment variables read by the orchestrator
    (`url_env`, `token_env`): a token written here sits in campaign.toml, which the orchestrator's user can read.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["leaderboard"] = "leaderboard"
    name: str = "leaderboard"
    url: str | None = None  # e.g. http://127.0.0.1:8765
    url_env: str | None = None  # or: the environment variable holding the URL
    token: str | None = None  # discouraged: prefer token_env
    token_env: str | None = None  # the environment variable holding the campaign's token
    timeout_s: Annotated[float, Field(gt=0)] = 30.0  # per HTTP request
    retries: Annotated[int, Field(ge=0)] = 3  # extra tries on a connection error, a timeout or a 5xx
    backoff_s: Annotated[float, Field(ge=0)] = 0.5  # first wait between tries; doubles each try
    budget: Annotated[int, Field(ge=0)] | None = None  # the campaign's own cap; the server enforces its own too

    @model_validator(mode="after")
    def _one_source_each(self) -> LeaderboardTargetConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("set exactly one of `url` and `url_env`")
        if (self.token is None) == (self.token_env is None):
            raise ValueError("set exactly one of `token` and `token_env` (prefer `token_env`)")
        return self


class KaggleTargetConfig(BaseModel):
    """A Kaggle competition, through the official `kaggle` CLI (credentials: ~/.kaggle/kaggle.json or env)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["kaggle"] = "kaggle"
    name: str = "kaggle"
    competition: Annotated[str, Field(min_length=1)]
    cli: str = "kaggle"  # the kaggle executable
    id_column: str = "id"  # the submission CSV's columns
    prediction_column: str = "prediction"
    message: str = "evotrain {candidate}"  # the submission description; a unique tag is appended
    timeout_s: Annotated[float, Field(gt=0)] = 300.0  # per CLI call
    poll_interval_s: Annotated[float, Field(gt=0)] = 30.0  # between reads of the submissions list
    poll_timeout_s: Annotated[float, Field(gt=0)] = 3600.0  # how long to wait for Kaggle to score
    budget: Annotated[int, Field(ge=0)] | None = None  # the campaign's own cap; Kaggle enforces its daily limit


ExternalConfig = Annotated[
    CommandTargetConfig | LeaderboardTargetConfig | KaggleTargetConfig, Field(discriminator="kind")
]
EXTERNAL_KINDS = ("command", "leaderboard", "kaggle")
_EXTERNAL_ADAPTER: TypeAdapter[ExternalConfig] = TypeAdapter(ExternalConfig)


def parse_external_spec(spec: str) -> ExternalConfig:
    """`--external` takes a TOML file (kind = "command" | "leaderboard" | "kaggle") or `command:<shell command>`."""
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
            fix='pass a TOML file (kind = "command" | "leaderboard" | "kaggle") or `command:<shell command>`',
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path, fix="correct the TOML syntax") from None
    kind = data.setdefault("kind", "command")
    if kind not in EXTERNAL_KINDS:
        raise ConfigError(
            f"field `kind`: unknown external target {kind!r}",
            path=path,
            fix="use kind = " + " | ".join(f'"{k}"' for k in EXTERNAL_KINDS) + " (see docs/leaderboard.md)",
        )
    if kind == "command":
        data.setdefault("cwd", str(path.resolve().parent))
    try:
        return _EXTERNAL_ADAPTER.validate_python(data)
    except ValidationError as err:
        raise format_validation_error(path, err) from None
