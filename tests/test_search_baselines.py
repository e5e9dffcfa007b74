"""The search baselines (`--agent optuna-tpe|random --meta none`) on examples/tiny: proposals inside the declared
space and never repeated, the same proposals after a kill -9 and resume, a policy that does not learn, and a final
pick made on the scores the campaign saw (a leaderboard's public part)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from evotrain.campaign.final_pick import final_pick
from evotrain.campaign.init import init_campaign
from evotrain.campaign.loop import Campaign
from evotrain.campaign.store import CampaignStore
from evotrain.demo import TOKEN_ENV, external_target, serve_leaderboard
from evotrain.leaderboard.app import API
from evotrain.leaderboard.store import LeaderboardStore
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.substrate.spec import SubstrateSpec, load_spec
from evotrain.workers.select import AgentChoice, build_meta_agent, build_worker

from .campaign_helpers import EXAMPLES, comparable, make_tiny_campaign, manifests

ROUNDS, WORKERS = 3, 4


def run_baseline(run: Path, agent: str, rounds: int = ROUNDS) -> dict[str, Manifest]:
    choice = AgentChoice(agent=agent, meta="none")  # type: ignore[arg-type]
    Campaign(run, worker=build_worker(choice), meta_agent=build_meta_agent(choice)).run(
        rounds=rounds, workers=WORKERS, parallel=2
    )
    return manifests(run)


def in_space(spec: SubstrateSpec, knob_values: dict[str, Any]) -> bool:
    for axis_name, axis in spec.search.axes.items():
        for knob_name, knob in axis.knobs.items():
            value = knob_values[f"{axis_name}.{knob_name}"]
            if knob.type == "weights":
                assert knob.low is not None and knob.high is not None
                if not all(knob.low <= w <= knob.high for w in value.values()):
                    return False
            elif knob.type in ("float", "int"):
                assert knob.low is not None and knob.high is not None
                if not knob.low <= value <= knob.high:
                    return False
            elif knob.type == "choice" and value not in (knob.choices or []):
                return False
    return True


def config(m: Manifest) -> str:
    return repr(sorted(m.knob_values.items()))


@pytest.mark.parametrize("agent", ["optuna-tpe", "random"])
def test_a_baseline_proposes_inside_the_declared_space_and_never_repeats(tmp_path: Path, agent: str) -> None:
    run = make_tiny_campaign(tmp_path, seed=5)
    got = run_baseline(run, agent)
    spec = load_spec(CampaignPaths(run).substrate)
    workers = [m for m in got.values() if m.role == "worker"]
    assert len(workers) == ROUNDS * (WORKERS - 1)
    assert all(m.ok for m in got.values())
    for m in workers:
        assert m.worker == agent
        assert in_space(spec, m.knob_values), m.candidate_id
        assert m.changes, f"{m.candidate_id} ran the standing recipe again"
        # the whole space is searched, not one axis: every knob's value is set by the sampler
        assert len({c.axis for c in m.changes}) > 1
    anchor_config = config(next(m for m in got.values() if m.role == "anchor"))
    configs = [config(m) for m in workers]
    assert len(set(configs)) == len(configs), "a configuration was proposed twice"
    assert anchor_config not in configs


def test_the_tpe_study_is_rebuilt_from_the_manifests_and_learns_from_them(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path, seed=5)
    got = run_baseline(run, "optuna-tpe")
    later = [m for m in got.values() if m.role == "worker" and m.round == ROUNDS]
    earlier = sum(1 for m in got.values() if m.round < ROUNDS)
    assert all(f"rebuilt from {earlier} earlier trial(s)" in m.rationale for m in later)


def test_the_none_meta_agent_keeps_the_policy(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path, seed=5)
    run_baseline(run, "random")
    store = CampaignStore(CampaignPaths(run))
    learned = ("standing_recipe", "axes", "dead_ends", "objective", "external_plan", "replicate", "asks")
    first = store.policy(1).model_dump(include=set(learned))
    for round_no in range(2, ROUNDS + 2):
        policy = store.policy(round_no)
        assert policy.model_dump(include=set(learned)) == first, round_no
        assert policy.parent_sha256 == store.policy(round_no - 1).sha256()
        assert [entry.action for entry in policy.changelog][-1] == "kept"
    assert subprocess.run([sys.executable, "-m", "evotrain", "audit", str(run)]).returncode == 0


@pytest.mark.slow
def test_a_killed_baseline_campaign_resumes_with_the_same_proposals(tmp_path: Path) -> None:
    reference = make_tiny_campaign(tmp_path, seed=9, name="reference")
    expected = run_baseline(reference, "optuna-tpe")

    run = make_tiny_campaign(tmp_path, seed=9, name="killed")
    args = [sys.executable, "-m", "evotrain", "run", str(run), "--rounds", str(ROUNDS), "--workers", str(WORKERS)]
    args += ["--parallel", "2", "--agent", "optuna-tpe", "--meta", "none"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    round_2 = CampaignPaths(run).round(2)
    deadline = time.monotonic() + 120
    while not any(cp.manifest.exists() for cp in round_2.candidates()):  # kill inside round 2
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    got = manifests(run)
    assert sorted(got) == sorted(expected)
    for cid, m in expected.items():
        assert comparable(got[cid]) == comparable(m), cid
        assert got[cid].knob_values == m.knob_values, cid


def test_the_final_pick_is_made_on_public_scores_only(tmp_path: Path) -> None:
    substrate = tmp_path / "tiny"
    run = tmp_path / "run"

    shutil.copytree(EXAMPLES / "tiny", substrate)
    init_campaign(run, substrate, external=external_target(), seed=2)
    db = tmp_path / "board.sqlite"
    answers = EXAMPLES / "tiny_external_answers.jsonl"
    with serve_leaderboard(answers, db, "baseline") as url:
        got = run_baseline(run, "optuna-tpe", rounds=2)
        pick = final_pick(got.values())
        # what the campaign could see: the server keeps every private score hidden until the board is finalized
        headers = {"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}
        seen = httpx.get(f"{url}{API}/submissions", headers=headers, timeout=30).json()
    assert seen and all(s["private_score"] is None for s in seen)
    assert pick is not None

    store = LeaderboardStore(db)
    try:
        store.finalize()
        rows = {row.id: row for row in store.submissions("baseline")}
    finally:
        store.close()
    submitted = [m for m in got.values() if m.external is not None]
    assert len(submitted) == len(rows)
    for m in submitted:  # every score a manifest holds is the public one the server returned
        assert m.external is not None and m.external.submission_id in rows
        assert m.external.score == rows[m.external.submission_id].public_score
    best_public = max(row.public_score or 0.0 for row in rows.values())
    assert pick.external == best_public
    assert rows[pick.submission_id or ""].private_score is not None  # revealed only now, after the pick
    assert final_pick(manifests(run).values()) == pick  # finalizing changed nothing the pick reads
