"""Helpers for campaign-level tests: a tiny real substrate, its external scorer, and manifest comparison."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from evotrain.campaign.init import init_campaign
from evotrain.external.config import CommandTargetConfig
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tiny_external(answers: Path | None = None) -> CommandTargetConfig:
    answers = answers or EXAMPLES / "tiny_external_answers.jsonl"
    command = f"{sys.executable} {EXAMPLES / 'tiny_score.py'} --answers {answers} --predictions {{predictions}}"
    return CommandTargetConfig(command=command, cwd=str(EXAMPLES))


def make_tiny_campaign(tmp_path: Path, *, seed: int = 0, name: str = "run") -> Path:
    substrate = tmp_path / "tiny"
    if not substrate.exists():
        shutil.copytree(EXAMPLES / "tiny", substrate, ignore=shutil.ignore_patterns("__pycache__"))
    run = tmp_path / name
    init_campaign(run, substrate, external=tiny_external(), seed=seed)
    return run


def manifests(run: Path) -> dict[str, Manifest]:
    out = {}
    for round_paths in CampaignPaths(run).rounds():
        for cp in round_paths.candidates():
            if cp.manifest.exists():
                m = Manifest.model_validate_json(cp.manifest.read_text())
                out[m.candidate_id] = m
    return out


def comparable(m: Manifest) -> dict[str, Any]:
    """What must be identical between an interrupted-and-resumed run and an uninterrupted one (not timings)."""
    return {
        "role": m.role,
        "axis": m.axis,
        "seed": m.seed,
        "changes": [c.model_dump() for c in m.changes],
        "recipe_diff": m.recipe_diff,
        "policy": m.policy_sha256,
        "checkpoints": [(c.checkpoint, {d: s.score for d, s in c.domains.items()}, c.objective) for c in m.checkpoints],
        "selected": m.selected.model_dump() if m.selected else None,
        "external": m.external.score if m.external else None,
        "failure": m.failure.failure_class if m.failure else None,
    }
