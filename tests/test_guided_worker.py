"""The guided worker (`--agent guided`) on examples/tiny: the first half of a round's worker slots are one-axis
probes from the standing recipe, the rest whole-configuration proposals from Optuna TPE inside the declared space
that never repeat a configuration the campaign ran; the same campaign seed gives the same proposals."""

from __future__ import annotations

from pathlib import Path

import pytest

from evotrain.campaign.loop import Campaign
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.substrate.spec import load_spec
from evotrain.workers.guided import GuidedWorker
from evotrain.workers.select import AgentChoice, build_meta_agent, build_worker

from .campaign_helpers import make_tiny_campaign, manifests
from .test_search_baselines import config, in_space

ROUNDS, WORKERS = 2, 6  # 1 anchor + 5 worker slots in round 1: 3 probes, 2 proposals


def run_guided(run: Path) -> dict[str, Manifest]:
    choice = AgentChoice(agent="guided", meta="rules")
    Campaign(run, worker=build_worker(choice), meta_agent=build_meta_agent(choice)).run(
        rounds=ROUNDS, workers=WORKERS, parallel=2
    )
    return manifests(run)


def slot_kind(m: Manifest) -> str:
    return "proposal" if m.rationale.startswith("Optuna TPE") else "probe"


@pytest.fixture(scope="module")
def guided_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_tiny_campaign(tmp_path_factory.mktemp("guided"), seed=3)
    run_guided(run)
    return run


def test_half_the_slots_probe_one_axis_and_the_rest_are_proposals(guided_campaign: Path) -> None:
    got = manifests(guided_campaign)
    first_round = sorted((m for m in got.values() if m.round == 1 and m.role == "worker"), key=lambda m: m.candidate_id)
    assert [slot_kind(m) for m in first_round] == ["probe", "probe", "probe", "proposal", "proposal"]
    for m in got.values():
        if m.role != "worker":
            continue
        assert m.worker == "guided" and m.ok and m.changes, m.candidate_id
        if slot_kind(m) == "probe":  # one clear change (sometimes two) on the slot's own axis only
            assert 1 <= len(m.changes) <= 2 and {c.axis for c in m.changes} == {m.axis}, m.candidate_id


def test_proposals_stay_inside_the_space_and_never_repeat_a_configuration(guided_campaign: Path) -> None:
    got = manifests(guided_campaign)
    spec = load_spec(CampaignPaths(guided_campaign).substrate)
    proposals = [m for m in got.values() if m.role == "worker" and slot_kind(m) == "proposal"]
    assert len(proposals) >= ROUNDS * 2
    for m in proposals:
        assert in_space(spec, m.knob_values), m.candidate_id
        earlier = {config(o) for o in got.values() if o.round < m.round}
        assert config(m) not in earlier, f"{m.candidate_id} re-ran a finished configuration"
    assert any(len({c.axis for c in m.changes}) > 1 for m in proposals), "proposals move several axes at once"


def test_the_same_campaign_seed_gives_the_same_proposals(guided_campaign: Path, tmp_path: Path) -> None:
    again = run_guided(make_tiny_campaign(tmp_path, seed=3))
    first = manifests(guided_campaign)
    assert sorted(again) == sorted(first)
    for cid, m in first.items():
        assert again[cid].knob_values == m.knob_values, cid


def test_the_probe_share_is_checked_and_leaves_a_probe_in_every_round() -> None:
    with pytest.raises(ValueError, match="probe_share"):
        GuidedWorker(probe_share=1.5)
    worker = GuidedWorker(probe_share=0.0)
    assert [worker.probes(n) for n in (0, 1, 5)] == [0, 1, 1]
    assert [GuidedWorker().probes(n) for n in (1, 2, 5, 7)] == [1, 1, 3, 4]
