"""A finished 2-round × 4-candidate tiny campaign, run once for every report test (read-only for them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evotrain.campaign.loop import Campaign

from ..campaign_helpers import make_tiny_campaign


@pytest.fixture(scope="session")
def finished_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_tiny_campaign(tmp_path_factory.mktemp("report"))
    Campaign(run).run(rounds=2, workers=4, parallel=2)
    return run
