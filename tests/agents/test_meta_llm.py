"""The LLM meta agent driven by a loopback server replaying recorded policy updates, through real rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from evotrain.campaign.loop import Campaign
from evotrain.policy.meta_llm import LLMMetaAgent, LLMMetaConfig, PolicyUpdate
from evotrain.records.layout import CampaignPaths
from evotrain.records.meta import MetaRecord
from evotrain.records.policy import Policy, SelectionObjective

from ..campaign_helpers import make_tiny_campaign
from .replay_server import ReplayServer

RECORDINGS = Path(__file__).parent / "recordings"


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReplayServer]:
    run = make_tiny_campaign(tmp_path_factory.mktemp("meta"))
    with ReplayServer.from_file(RECORDINGS / "meta_two_rounds.json") as server:
        meta = LLMMetaAgent(LLMMetaConfig(base_url=server.base_url, model="meta-model"))
        Campaign(run, meta_agent=meta).run(rounds=2, workers=2)
    return run, server


def _policy(run: Path, round_no: int) -> Policy:
    return Policy.model_validate_json(CampaignPaths(run).round(round_no).policy_json.read_text())


def _record(run: Path, round_no: int) -> MetaRecord:
    return MetaRecord.model_validate_json((CampaignPaths(run).round(round_no).root / "meta.json").read_text())


def test_the_replayed_conversation_matched(meta_run: tuple[Path, ReplayServer]) -> None:
    _, server = meta_run
    assert server.mismatches == [] and len(server.requests) == 2


def test_a_valid_update_is_accepted_and_applied(meta_run: tuple[Path, ReplayServer]) -> None:
    run, _ = meta_run
    p1, p2 = _policy(run, 1), _policy(run, 2)
    assert p2.parent_sha256 == p1.sha256() and p2.noise.k == 2.5
    assert [(d.round, d.axis, d.knob, d.direction) for d in p2.dead_ends] == [(1, "optimizer", "lr", "increase")]
    actions = [c.action for c in p2.changelog]
    assert "llm_update" in actions and "noise_k" in actions and "meta_fallback" not in actions
    narrative = [c.reason for c in p2.changelog if c.action == "model_narrative"]
    assert narrative and all(n.startswith("[model-written] ") for n in narrative)
    record = _record(run, 1)
    assert record.outcome == "accepted" and record.model_written and record.input_tokens == 9000
    assert record.narrative is not None and record.narrative.surprises.startswith("Nothing unexpected")


def test_an_update_removing_a_dead_end_is_refused_and_the_rules_take_over(meta_run: tuple[Path, ReplayServer]) -> None:
    run, _ = meta_run
    p2, p3 = _policy(run, 2), _policy(run, 3)
    assert p3.parent_sha256 == p2.sha256()
    assert p3.dead_ends[: len(p2.dead_ends)] == p2.dead_ends  # the registry kept its entry
    fallback = p3.changelog[0]
    assert fallback.action == "meta_fallback" and "refused" in fallback.reason
    assert "[dead_ends_append_only]" in fallback.reason
    assert "llm_update" not in [c.action for c in p3.changelog]
    record = _record(run, 2)
    assert record.outcome == "refused" and "dead_ends_append_only" in record.reason
    assert record.update == {"rationale": record.update["rationale"], "dead_ends": []}


def test_invalid_output_falls_back_with_the_reason(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    bad = {"rationale": "promote a ghost", "promote": "r0001/c09-nothing", "extra_field": 1}
    recording = [{"reply": {"content": json.dumps(bad), "usage": {"prompt_tokens": 10, "completion_tokens": 5}}}]
    with ReplayServer(recording) as server:
        meta = LLMMetaAgent(LLMMetaConfig(base_url=server.base_url, model="m"))
        Campaign(run, meta_agent=meta).run(rounds=1, workers=2)
    record = _record(run, 1)
    assert record.outcome == "invalid" and "extra_field" in record.reason
    assert _policy(run, 2).changelog[0].action == "meta_fallback"


def test_the_update_schema_is_what_the_model_is_shown() -> None:
    schema = PolicyUpdate.model_json_schema()
    assert set(schema["properties"]) == {
        "rationale", "promote", "axes", "dead_ends", "noise_k", "anchors_per_round", "replicates", "objective",
        "asks", "replicate", "combine", "narrative",
    }  # fmt: skip


def test_a_negative_domain_weight_is_refused_when_proposed(tmp_path: Path) -> None:
    """A weight below 0 is invalid at proposal time (not one round later, in the harness, on every resume)."""
    run = make_tiny_campaign(tmp_path)
    bad = {"rationale": "ignore beta", "objective": {"domain_weights": {"alpha": 1.0, "beta": -0.5}}}
    recording = [{"reply": {"content": json.dumps(bad), "usage": {"prompt_tokens": 10, "completion_tokens": 5}}}]
    with ReplayServer(recording) as server:
        meta = LLMMetaAgent(LLMMetaConfig(base_url=server.base_url, model="m"))
        Campaign(run, meta_agent=meta).run(rounds=1, workers=2)
    record = _record(run, 1)
    assert record.outcome == "invalid" and "domain_weights" in record.reason
    p2 = _policy(run, 2)
    assert p2.changelog[0].action == "meta_fallback"
    assert all(w >= 0 for w in p2.objective.domain_weights.values())
    with pytest.raises(ValidationError, match="domain_weights"):
        SelectionObjective(domain_weights={"beta": -0.5})


def test_the_update_reads_the_old_objective_mode_name_and_sets_the_noise_counts() -> None:
    update = PolicyUpdate.model_validate(
        {"rationale": "r", "objective": {"mode": "maximize_dev"}, "anchors_per_round": 2, "replicates": 3}
    )
    assert update.objective is not None and update.objective.mode == "optimize_dev"
    assert update.anchors_per_round == 2 and update.replicates == 3
    with pytest.raises(ValidationError):
        PolicyUpdate.model_validate({"rationale": "r", "anchors_per_round": 0})


def test_a_combination_names_worker_candidates_with_knob_changes_only(tmp_path: Path) -> None:
    run = make_tiny_campaign(tmp_path)
    bad = {"rationale": "run these together", "combine": ["r0001/c01-anchor", "r0001/c02-x"]}
    recording = [{"reply": {"content": json.dumps(bad), "usage": {"prompt_tokens": 10, "completion_tokens": 5}}}]
    with ReplayServer(recording) as server:
        meta = LLMMetaAgent(LLMMetaConfig(base_url=server.base_url, model="m"))
        Campaign(run, meta_agent=meta).run(rounds=1, workers=2)
    record = _record(run, 1)
    assert record.outcome == "invalid" and "combine: 'r0001/c01-anchor' is not a worker candidate" in record.reason
    assert _policy(run, 2).changelog[0].action == "meta_fallback"
