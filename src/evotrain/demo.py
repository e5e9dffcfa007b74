"""`evotrain demo`: the embedded default, end to end and offline.

It builds the Wonderland-puzzles substrate (a small causal LM post-trained on CPU), keeps the external split's
labels outside the campaign for the external target, initialises a campaign and runs it.

    DIR/
      substrate/                     the built substrate (the campaign snapshots it)
      hidden/external_answers.jsonl  the labels only the external target reads
      campaign/                      the campaign folder (evotrain status/audit DIR/campaign)
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evotrain.campaign.config import CommandTargetConfig
from evotrain.campaign.init import init_campaign
from evotrain.substrate.spec import SPEC_FILENAME


@dataclass(frozen=True)
class DemoPlan:
    rounds: int
    workers: int
    parallel: int


FULL = DemoPlan(rounds=4, workers=8, parallel=2)
QUICK = DemoPlan(rounds=1, workers=2, parallel=2)


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def substrate(self) -> Path:
        return self.root / "substrate"

    @property
    def answers(self) -> Path:
        return self.root / "hidden" / "external_answers.jsonl"

    @property
    def campaign(self) -> Path:
        return self.root / "campaign"


def external_target(answers: Path, split: str = "external") -> CommandTargetConfig:
    command = (
        f"{shlex.quote(sys.executable)} -m evotrain.puzzles.score --answers {shlex.quote(str(answers))} "
        f"--split {split} --predictions {{predictions}}"
    )
    return CommandTargetConfig(name=f"puzzles-{split}", command=command, cwd=str(answers.parent))


def prepare_demo(
    root: Path, *, seed: int = 0, profile: str = "tiny", say: Callable[[str], None] | None = None
) -> DemoPaths:
    """Build the substrate and init the campaign, unless an earlier call already did (then this resumes)."""
    from evotrain.puzzles.build import build_substrate  # torch is imported only when the demo needs it

    paths = DemoPaths(root)
    if (paths.campaign / "campaign.toml").exists():
        return paths
    if not ((paths.substrate / SPEC_FILENAME).exists() and paths.answers.exists()):
        if paths.substrate.exists():  # a build interrupted part-way: start it again
            shutil.rmtree(paths.substrate)
        build_substrate(paths.substrate, seed=seed, answers_path=paths.answers, profile=profile, progress=say)
    init_campaign(paths.campaign, paths.substrate, external=external_target(paths.answers), seed=seed)
    return paths
