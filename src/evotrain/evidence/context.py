"""What every section of the evidence reads: the round, its policy and spec, the history, and the noise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evotrain.evidence.noise import DevNoise
from evotrain.records.evidence import Surprise
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SubstrateSpec


@dataclass
class RoundContext:
    round_no: int
    policy: Policy
    spec: SubstrateSpec
    history: Sequence[Manifest]
    campaign_root: Path
    weights: dict[str, float]
    sign: float
    k: float
    noise: DevNoise
    external_sd: float
    external_source: str
    surprises: list[Surprise] = field(default_factory=list)

    @property
    def external_threshold(self) -> float:
        return self.k * self.external_sd
