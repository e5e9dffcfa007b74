"""Shared fixtures.

- `tiny_substrate`: a fresh copy of examples/tiny (a real numpy training stack, ~1 s a trial) under tmp_path.
- `tiny_spec`: its parsed evotrain.toml.
- `tiny_candidate`: a campaign folder under tmp_path with one candidate (round 1, "c01-anchor") whose sandbox
  is a plain copy of the tiny substrate; returns (campaign_root, CandidatePaths). No snapshot/fork machinery.
- `tiny_answers`, `tiny_scorer`: the external labels (outside the substrate) and the scorer that reads them:
  `python tiny_score.py --answers A --predictions P` prints {"score", "n", "domains"}.
Fixtures rather than importable names, so the tests work whether or not tests/ is a package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evotrain.records.layout import CampaignPaths, CandidatePaths
from evotrain.substrate.spec import SubstrateSpec, load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY_SUBSTRATE = EXAMPLES / "tiny"
TINY_ANSWERS = EXAMPLES / "tiny_external_answers.jsonl"
TINY_SCORER = EXAMPLES / "tiny_score.py"


def copy_substrate(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture
def tiny_answers() -> Path:
    return TINY_ANSWERS


@pytest.fixture
def tiny_scorer() -> Path:
    return TINY_SCORER


@pytest.fixture
def tiny_substrate(tmp_path: Path) -> Path:
    return copy_substrate(TINY_SUBSTRATE, tmp_path / "tiny")


@pytest.fixture
def tiny_spec(tiny_substrate: Path) -> SubstrateSpec:
    return load_spec(tiny_substrate)


@pytest.fixture
def tiny_candidate(tmp_path: Path, tiny_substrate: Path) -> tuple[Path, CandidatePaths]:
    campaign = CampaignPaths(tmp_path / "campaign")
    candidate = campaign.round(1).candidate("c01-anchor")
    candidate.root.mkdir(parents=True)
    copy_substrate(tiny_substrate, candidate.sandbox)
    return campaign.root, candidate
