"""One place that turns a campaign's external-target config into the target object, for every kind."""

from __future__ import annotations

from evotrain.external.command import CommandTarget
from evotrain.external.config import CommandTargetConfig, ExternalConfig, KaggleTargetConfig, LeaderboardTargetConfig
from evotrain.external.kaggle import KaggleTarget
from evotrain.external.leaderboard import LeaderboardTarget
from evotrain.external.protocol import ExternalTarget


def build_target(config: ExternalConfig) -> ExternalTarget:
    """The target for `config`; raises ConfigError when it cannot be built (e.g. its token variable is unset)."""
    if isinstance(config, CommandTargetConfig):
        return CommandTarget(config)
    if isinstance(config, LeaderboardTargetConfig):
        return LeaderboardTarget(config)
    if isinstance(config, KaggleTargetConfig):
        return KaggleTarget(config)
    raise TypeError(f"unknown external target config {type(config).__name__}")
