"""A real campaign on the synthetic substrate (offline mutator, rule meta agent, a command external target), read
back three ways: changes stack in the standing recipe only once tested together (a replicate whose source ran before
the standing recipe changed re-runs the source's knob changes on the standing recipe in force), a combination runs
exactly its sources' knob changes on the standing recipe, and the campaign's verdict (`evotrain summary`) tells what
it promoted and what it stopped trusting."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from evotrain.campaign.store import CampaignStore
from evotrain.campaign.verdict import campaign_verdict
from evotrain.cli import app
from evotrain.records.layout import CampaignPaths

from .test_synthetic_benchmark import B

pytestmark = pytest.mark.slow  # a real 4-round campaign (about 20 s idle)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> CampaignPaths:
    # Seed 3 with the trap from round 3: a promotion, two wins re-run on a newer standing recipe, a
    # combination, and the trap domain flagged. (Seed 0 served until the decoupling flag fired a round earlier
    # there, which left no win to re-run on a newer standing recipe.)
    work = tmp_path_factory.mktemp("synthetic")
    result = B.run_campaign(label="t", seed=3, arm="trap", trap_round=3, rounds=4, workers=8, work=work, keep=True)
    assert result.error is None
    return CampaignPaths(work / "t-s0003-trap" / "run")


def test_a_replicate_after_a_promotion_runs_its_change_on_the_new_standing_recipe(campaign: CampaignPaths) -> None:
    store = CampaignStore(campaign)
    manifests = {m.candidate_id: m for m in store.manifests(up_to_round=4)}
    rebased = [
        m
        for m in manifests.values()
        if m.role == "replicate"
        and m.replicate_of is not None
        and store.policy(m.round).standing_recipe.files
        != store.policy(manifests[m.replicate_of].round).standing_recipe.files
    ]
    assert rebased, "the campaign re-ran no win on a newer standing recipe"
    assert any(m.changes for m in rebased), "every re-run win was already in the standing recipe"
    for m in rebased:
        source = manifests[m.replicate_of or ""]
        anchor = manifests[f"r{m.round:04d}/c01-anchor"]
        assert "applied on the standing recipe in force" in m.rationale
        moved = {f"{c.axis}.{c.knob}" for c in source.changes}
        # every knob the source moved holds the source's value; every other knob the standing recipe's
        for knob, value in m.knob_values.items():
            expected = source.knob_values[knob] if knob in moved else anchor.knob_values[knob]
            assert value == expected, knob
        # the source's changes, less any the standing recipe already holds (a combination may have promoted it)
        made = {(c.key, c.new) for c in m.changes}
        assert made <= {(c.key, c.new) for c in source.changes}
        for c in source.changes:
            if (c.key, c.new) not in made:
                assert anchor.knob_values[f"{c.axis}.{c.knob}"] == source.knob_values[f"{c.axis}.{c.knob}"], c.key


def test_the_verdict_tells_what_was_promoted_and_what_was_no_longer_trusted(campaign: CampaignPaths) -> None:
    store = CampaignStore(campaign)
    verdict = campaign_verdict(store)
    assert verdict.rounds == 4
    assert verdict.substrate is not None and verdict.substrate.candidate_id == "r0001/c01-anchor"
    assert verdict.pick is not None and verdict.pick.external >= (verdict.external_before or 0.0)
    promoted = [p for r in range(2, 6) for p in store.policy(r).changelog if p.action == "promote"]
    assert [d.reason for d in verdict.promotions] == [p.reason for p in promoted] and promoted
    assert verdict.standing_source == store.policy(5).standing_recipe.source
    untrusted = [d for d in verdict.trust if d.action == "untrust_domain"]
    assert untrusted and untrusted[0].reason.startswith("logic:")  # the trap's domain
    out = CliRunner().invoke(app, ["summary", str(campaign.root)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "before: the substrate's recipe" in out.output and "r0001/c01-anchor" in out.output
    assert verdict.pick.candidate_id in out.output and "stopped trusting" in out.output and "logic:" in out.output


def test_a_combination_runs_exactly_its_sources_changes_on_the_standing_recipe(campaign: CampaignPaths) -> None:
    store = CampaignStore(campaign)
    manifests = {m.candidate_id: m for m in store.manifests(up_to_round=4)}
    combinations = [m for m in manifests.values() if m.role == "combination"]
    assert combinations, "the campaign ran no combination"
    for m in combinations:
        assert m.combines == store.policy(m.round).combine and len(m.combines) >= 2
        anchor = manifests[f"r{m.round:04d}/c01-anchor"]
        moved = {f"{c.axis}.{c.knob}": manifests[s] for s in m.combines for c in manifests[s].changes}
        for knob, value in m.knob_values.items():
            expected = moved[knob].knob_values[knob] if knob in moved else anchor.knob_values[knob]
            assert value == expected, knob
        audit = next(a for a in store.read_evidence(m.round).rationale_audit if a.candidate_id == m.candidate_id)
        assert audit.stayed_on_axis and audit.policy_compliant, audit.notes
        assert "each was measured alone, this run measures them together" in m.rationale
