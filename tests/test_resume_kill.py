"""Kill -9 the orchestrator at random moments and resume: the finished campaign equals an uninterrupted one."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from evotrain.campaign.loop import Campaign
from evotrain.fileio import read_jsonl
from evotrain.records.layout import CampaignPaths
from evotrain.trial.trace import Trace

from .campaign_helpers import comparable, make_tiny_campaign, manifests

KILLS = 20
ARGS = ["--rounds", "2", "--workers", "4", "--parallel", "2"]


def start(run: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "evotrain", "run", str(run), *ARGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    reference = make_tiny_campaign(tmp_path, name="reference")
    Campaign(reference).run(rounds=2, workers=4, parallel=2)

    run = make_tiny_campaign(tmp_path, name="killed")
    rng = random.Random(20261123)
    kills = 0
    while kills < KILLS:
        proc = start(run)
        time.sleep(rng.uniform(0.2, 1.5))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
            break  # finished before this kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills == KILLS, f"the campaign finished after only {kills} kills; shorten the delays"
    final = start(run)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()

    expected, got = manifests(reference), manifests(run)
    assert sorted(got) == sorted(expected)
    for cid in expected:
        assert comparable(got[cid]) == comparable(expected[cid]), cid

    paths = CampaignPaths(run)
    for round_paths in paths.rounds()[:2]:
        kinds = Counter(e["kind"] for e in read_jsonl(round_paths.trace))
        assert kinds["round_closed"] == 1 and kinds["planned"] == 1
        for cp in round_paths.candidates():
            events = list(Trace(cp.trace).events())
            finished = Counter(e.key for e in events if e.kind == "step_finished")
            assert all(n == 1 for n in finished.values()), f"a finished step ran twice in {cp.candidate_id}"
            assert sum(e.kind == "external_submitted" for e in events) <= 1
    assert subprocess.run([sys.executable, "-m", "evotrain", "audit", str(run)]).returncode == 0
