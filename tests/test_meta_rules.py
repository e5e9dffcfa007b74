"""The rule meta agent: promotion, replication, dead ends, retirement, rotation and the proxy-aware reversal —
each proposal checked against the constitution the way the campaign loop checks it."""

from __future__ import annotations

from pathlib import Path

from evotrain.policy.constitution import DEFAULT_CONSTITUTION_PATH, load_constitution
from evotrain.policy.constitution_checks import check_policy_update, enforce
from evotrain.policy.initial import initial_policy
from evotrain.policy.meta_protocol import MetaInputs
from evotrain.policy.meta_rules import RuleMetaAgent
from evotrain.policy.render import render_policy_markdown
from evotrain.records.policy import Policy

from .synthetic_campaign import BASE_RECIPE, SPEC, SyntheticCampaign, change

CONSTITUTION = load_constitution(DEFAULT_CONSTITUTION_PATH)
LR3 = BASE_RECIPE.replace("lr = 0.001", "lr = 0.003")
WARM20 = BASE_RECIPE.replace("warmup = 10", "warmup = 20")


def step(c: SyntheticCampaign, policy: Policy) -> Policy:
    """Collect the round's evidence, propose the next policy, and enforce the constitution on it."""
    evidence = c.evidence(policy.round, policy)
    history = c.history(policy.round)
    proposed = RuleMetaAgent().propose(MetaInputs(policy, evidence, SPEC, history, CONSTITUTION)).policy
    enforce(
        previous=policy, proposed=proposed, evidence=evidence, constitution=CONSTITUTION, spec=SPEC, history=history
    )
    assert proposed.round == policy.round + 1 and proposed.parent_sha256 == policy.sha256()
    return proposed


def replicate_in_round_2(c: SyntheticCampaign, source: str, *, skill: float, recipe: str) -> None:
    """Round 2's replicate of a round-1 candidate (`r0001/c02-<axis>`), as the planner names it."""
    axis = source.rsplit("-", 1)[1]
    c.run(2, f"c02-replicate-{axis}", role="replicate", axis=axis, replicate_of=source, skill=skill, recipe=recipe)


def _round_one(c: SyntheticCampaign) -> None:
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.70)
    c.run(1, "c09-anchor", role="anchor", skill=0.6, seed=1)  # a second anchor: the seed noise is measured
    c.run(
        1,
        "c02-optimizer",
        axis="optimizer",
        skill=0.75,
        external=0.72,
        recipe=LR3,
        changes=[change("optimizer", "lr", 0.001, 0.003)],
    )
    c.run(1, "c03-data_mix", axis="data_mix", skill=0.62)
    c.run(1, "c04-schedule", axis="schedule", skill=0.65, recipe=WARM20, changes=[change("schedule", "warmup", 10, 20)])


def test_promotion_above_the_threshold_becomes_the_standing_recipe(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _round_one(c)
    nxt = step(c, initial_policy(SPEC))
    assert nxt.noise.threshold is not None and abs(nxt.noise.threshold - 0.04) < 1e-9
    recipe = nxt.standing_recipe
    assert recipe.source == "r0001/c02-optimizer"
    assert recipe.files == {"recipe.toml": LR3}
    assert "+lr = 0.003" in recipe.diff
    assert [ch.knob for ch in recipe.changes] == ["lr"]
    assert recipe.provenance and recipe.provenance[-1].round == 1
    assert (c.paths.substrate / "recipe.toml").read_text() == BASE_RECIPE  # never written into the substrate
    assert any(p.action == "promote" for p in nxt.changelog)
    assert nxt.best_external == 0.72 and nxt.best_external_source == "r0001/c02-optimizer"
    md = render_policy_markdown(nxt)
    assert "```diff" in md and "## Don't waste budget on" in md and "`r0001/c02-optimizer`" in md


def test_near_threshold_win_is_replicated_before_promotion(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(1, "c02-schedule", axis="schedule", skill=0.65, recipe=WARM20, changes=[change("schedule", "warmup", 10, 20)])
    nxt = step(c, initial_policy(SPEC))
    assert nxt.replicate == ["r0001/c02-schedule"]
    assert nxt.standing_recipe.source is None
    # the replicate confirms it: the mean of the two gains clears the threshold
    c.run(2, "c01-anchor", role="anchor", skill=0.6)
    replicate_in_round_2(c, "r0001/c02-schedule", skill=0.66, recipe=WARM20)
    third = step(c, nxt)
    assert third.standing_recipe.source == "r0001/c02-schedule"
    assert third.standing_recipe.files == {"recipe.toml": WARM20}
    assert third.replicate == []


def test_a_replicated_recipe_is_judged_by_its_mean_against_the_threshold_over_root_n(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(
        1, "c02-schedule", axis="schedule", skill=0.635, recipe=WARM20, changes=[change("schedule", "warmup", 10, 20)]
    )
    nxt = step(c, initial_policy(SPEC))
    threshold = nxt.noise.threshold
    assert threshold is not None and 0.035 < threshold and 0.035 > threshold / 2**0.5
    assert nxt.replicate == ["r0001/c02-schedule"] and nxt.standing_recipe.source is None
    assert any(p.action == "replicate" and "threshold for 2 runs" in p.reason for p in nxt.changelog)
    c.run(2, "c01-anchor", role="anchor", skill=0.6)
    replicate_in_round_2(c, "r0001/c02-schedule", skill=0.63, recipe=WARM20)
    third = step(c, nxt)  # mean gain +0.0325: below the one-run threshold, above the one for a mean of two runs
    assert third.standing_recipe.source == "r0001/c02-schedule"
    assert any(p.action == "promote" and "mean of 2 runs" in p.reason for p in third.changelog)


def test_a_mean_below_the_threshold_over_root_n_is_not_promoted(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(
        1, "c02-schedule", axis="schedule", skill=0.635, recipe=WARM20, changes=[change("schedule", "warmup", 10, 20)]
    )
    nxt = step(c, initial_policy(SPEC))
    c.run(2, "c01-anchor", role="anchor", skill=0.6)
    replicate_in_round_2(c, "r0001/c02-schedule", skill=0.6, recipe=WARM20)
    third = step(c, nxt)  # mean +0.0175, below threshold/√2 and below threshold/√3: dropped
    assert third.standing_recipe.source is None and third.replicate == []


def test_the_other_winners_of_a_promoting_round_are_rerun_on_the_new_standing_recipe(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(1, "c09-anchor", role="anchor", skill=0.6, seed=1)
    c.run(
        1, "c02-optimizer", axis="optimizer", skill=0.75, recipe=LR3, changes=[change("optimizer", "lr", 0.001, 0.003)]
    )
    c.run(1, "c03-schedule", axis="schedule", skill=0.7, recipe=WARM20, changes=[change("schedule", "warmup", 10, 20)])
    nxt = step(c, initial_policy(SPEC))
    assert nxt.standing_recipe.source == "r0001/c02-optimizer"
    assert nxt.replicate == ["r0001/c03-schedule"]
    reason = next(p.reason for p in nxt.changelog if p.action == "replicate")
    assert "on top of the new standing recipe (r0001/c02-optimizer)" in reason


def test_a_gain_concentrated_in_one_domain_waits_for_the_external_target(tmp_path: Path) -> None:
    # +0.2 on equations alone (+0.067 overall, far above the threshold): promoted only if the external confirms it
    for external, promoted in ((0.705, False), (0.76, True)):
        c = SyntheticCampaign(tmp_path / str(promoted))
        c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.70, external_n=400)
        c.run(1, "c09-anchor", role="anchor", skill=0.6, seed=1)
        skills = {"cipher": 0.6, "equations": 0.8, "numeral": 0.6}
        c.run(1, "c02-data_mix", axis="data_mix", skill=skills, external=external, recipe=LR3)
        nxt = step(c, initial_policy(SPEC))
        if promoted:
            assert nxt.standing_recipe.source == "r0001/c02-data_mix"
        else:
            assert nxt.standing_recipe.source is None and nxt.replicate == ["r0001/c02-data_mix"]
            reason = next(p.reason for p in nxt.changelog if p.action == "replicate")
            assert "100% of its gain" in reason and "comes from equations" in reason


def test_a_gain_spread_over_domains_needs_no_external_confirmation(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(1, "c09-anchor", role="anchor", skill=0.6, seed=1)
    c.run(
        1, "c02-optimizer", axis="optimizer", skill=0.7, recipe=LR3, changes=[change("optimizer", "lr", 0.001, 0.003)]
    )
    assert step(c, initial_policy(SPEC)).standing_recipe.source == "r0001/c02-optimizer"


def test_one_run_is_not_promoted_before_the_seed_noise_is_measured(tmp_path: Path) -> None:
    # one anchor and no replicate: the threshold is item noise only, so a single run is re-run, not promoted
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(
        1, "c02-optimizer", axis="optimizer", skill=0.7, recipe=LR3, changes=[change("optimizer", "lr", 0.001, 0.003)]
    )
    nxt = step(c, initial_policy(SPEC))
    assert nxt.noise.seed_sd is None and nxt.standing_recipe.source is None
    assert nxt.replicate == ["r0001/c02-optimizer"]
    assert any(p.action == "replicate" and "holds no seed noise yet" in p.reason for p in nxt.changelog)
    # the replicate confirms it and measures the seed noise: promoted on the mean of its two runs
    c.run(2, "c01-anchor", role="anchor", skill=0.6)
    replicate_in_round_2(c, "r0001/c02-optimizer", skill=0.69, recipe=LR3)
    third = step(c, nxt)
    assert third.noise.seed_sd is not None and third.standing_recipe.source == "r0001/c02-optimizer"


def test_dead_ends_are_appended_with_round_tags_and_never_removed(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(
        1, "c02-optimizer", axis="optimizer", skill=0.5, recipe=LR3, changes=[change("optimizer", "lr", 0.001, 0.003)]
    )
    c.run(
        1,
        "c03-schedule",
        axis="schedule",
        skill=0.6,
        failure="oom",
        recipe=WARM20,
        changes=[change("schedule", "warmup", 10, 20)],
    )
    c.run(1, "c04-data_mix", axis="data_mix", skill=0.6, failure="preempted")  # the cluster's fault, not the recipe's
    second = step(c, initial_policy(SPEC))
    registry = [(d.round, d.axis, d.knob, d.direction) for d in second.dead_ends]
    assert registry == [(1, "optimizer", "lr", "increase"), (1, "schedule", "warmup", "increase")]
    assert "below −threshold" in second.dead_ends[0].evidence and "oom" in second.dead_ends[1].evidence
    c.run(2, "c01-anchor", role="anchor", skill=0.6)
    c.run(2, "c02-data_mix", axis="data_mix", skill=0.45, changes=[change("data_mix", "mix", 1.0, 0.5, "decrease")])
    third = step(c, second)
    assert third.dead_ends[:2] == second.dead_ends
    assert [(d.round, d.axis) for d in third.dead_ends[2:]] == [(2, "data_mix")]
    assert "[round 1] **optimizer.lr (increase)**" in render_policy_markdown(third)


def test_an_axis_harmful_in_two_rounds_is_retired(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    policy = initial_policy(SPEC)
    for r, new in ((1, 20), (2, 30)):
        c.run(r, "c01-anchor", role="anchor", skill=0.6)
        c.run(r, "c02-schedule", axis="schedule", skill=0.5, changes=[change("schedule", "warmup", 10, new)])
        policy = step(c, policy)
    schedule = next(a for a in policy.axes if a.name == "schedule")
    assert schedule.status == "retired" and "rounds 1, 2" in schedule.provenance[-1].reason
    assert {a.name for a in policy.active_axes()} == {"optimizer", "data_mix"}


def test_rotation_after_two_rounds_without_external_gain(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    policy = initial_policy(SPEC)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.72)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.6, external=0.71)
    policy = step(c, policy)
    for r in (2, 3):
        c.run(r, "c01-anchor", role="anchor", skill=0.6, external=0.70)
        c.run(r, "c02-optimizer", axis="optimizer", skill=0.61, external=0.71)
        c.run(r, "c03-schedule", axis="schedule", skill=0.6, external=0.705)
        policy = step(c, policy)
        if r == 2:
            assert policy.rounds_without_external_gain == 1
            assert {a.category for a in policy.active_axes()} == {"optimization", "data"}
    assert policy.rounds_without_external_gain == 2
    assert {a.name for a in policy.active_axes()} == {"data_mix"}
    retired = {a.name: a.provenance[-1].reason for a in policy.axes if a.status == "retired"}
    assert set(retired) == {"optimizer", "schedule"} and all("rotation" in r for r in retired.values())
    assert any("favour the data category" in ask for ask in policy.asks)


def _push_equations(c: SyntheticCampaign, r: int, name: str, lift: float, external: float) -> None:
    recipe = BASE_RECIPE.replace("equations = 1.0", f"equations = {1.0 + 10 * lift:g}")
    c.run(
        r,
        name,
        axis="data_mix",
        external=external,
        skill={"cipher": 0.6, "equations": 0.6 + lift, "numeral": 0.6},
        recipe=recipe,
        changes=[change("data_mix", "mix", {"equations": 1.0}, {"equations": 1.0 + 10 * lift}, "set")],
    )


def test_proxy_aware_reversal_on_decoupled_evidence(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    # Round 1: one candidate pushes the weak `equations` domain; the external target barely moves. One probe whose
    # share of the metric (+0.04) the external split could miss is no pattern: the policy still ranks by raw dev.
    # The dev gain clears the threshold and the external is not below, but it sits in one domain and the external
    # does not confirm it: one more seed, not a promotion.
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.70, external_n=2000)
    _push_equations(c, 1, "c02-data_mix", 0.12, 0.702)
    second = step(c, initial_policy(SPEC))
    assert second.objective.mode == "optimize_dev"
    assert second.standing_recipe.source is None and second.replicate == ["r0001/c02-data_mix"]
    # Round 2: two more candidates push equations further; external stays inside its band.
    c.run(2, "c01-anchor", role="anchor", skill=0.6, external=0.71, external_n=2000)
    _push_equations(c, 2, "c02-data_mix", 0.25, 0.712)
    _push_equations(c, 2, "c03-data_mix", 0.3, 0.708)
    third = step(c, second)
    objective = third.objective
    assert objective.mode == "proxy_aware"
    assert objective.untrusted_domains == ["equations"]
    assert objective.domain_weights["equations"] == 0.25 and objective.domain_weights["cipher"] == 1.0
    assert objective.checkpoint_criterion == "objective"
    assert any("lower the dev score on equations while raising the external score" in a for a in third.asks)
    assert any(p.action == "untrust_domain" and p.round == 2 for p in third.changelog)
    # raw dev gains on the untrusted domain are no longer promoted, nor re-run, without an external probe confirming
    # them: they are the evidence the domain was distrusted on
    assert third.standing_recipe == second.standing_recipe and third.replicate == []
    pulls = [p.reason for p in third.changelog if p.action == "not_promoted" and "no longer trusts" in p.reason]
    assert len(pulls) == 2 and all("comes from equations" in r for r in pulls)
    md = render_policy_markdown(third)
    assert "proxy_aware" in md and "**equations**" in md


def _distrust_equations(c: SyntheticCampaign, first_lift: float = 0.12) -> Policy:
    """Rounds 1-2 of the reversal above: equations is untrusted (weight 0.25) in the policy for round 3."""
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.70, external_n=2000)
    _push_equations(c, 1, "c02-data_mix", first_lift, 0.702)
    c.run(2, "c01-anchor", role="anchor", skill=0.6, external=0.71, external_n=2000)
    _push_equations(c, 2, "c02-data_mix", 0.25, 0.712)
    _push_equations(c, 2, "c03-data_mix", 0.3, 0.708)
    third = step(c, step(c, initial_policy(SPEC)))
    assert third.objective.untrusted_domains == ["equations"]
    return third


def test_an_untrusted_domain_is_trusted_again_when_its_gains_transfer(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    third = _distrust_equations(c, first_lift=0.2)
    # Round 3: one transferring push is not enough (the domain is still flagged: 3 flat of 4 above)
    c.run(3, "c01-anchor", role="anchor", skill=0.6, external=0.71, external_n=2000)
    _push_equations(c, 3, "c02-data_mix", 0.25, 0.80)
    fourth = step(c, third)
    assert fourth.objective.untrusted_domains == ["equations"]
    # Round 4: three more pushes that reach the external target: transfers (4) now outnumber flat probes (3)
    c.run(4, "c01-anchor", role="anchor", skill=0.6, external=0.71, external_n=2000)
    for name in ("c02-data_mix", "c03-data_mix", "c04-data_mix"):
        _push_equations(c, 4, name, 0.25, 0.80)
    fifth = step(c, fourth)
    assert fifth.objective.untrusted_domains == []
    assert fifth.objective.domain_weights["equations"] == 1.0
    assert any(p.action == "retrust_domain" and "trusted again" in p.reason for p in fifth.changelog)
    # the constitution refuses trusting it again without that evidence
    early = fourth.model_copy(deep=True)
    early.objective.untrusted_domains = []
    refused = check_policy_update(
        previous=third,
        proposed=early,
        evidence=c.evidence(3, third),
        constitution=CONSTITUTION,
        spec=SPEC,
        history=c.history(3),
    )
    assert any(b.rule == "gap_calibration" and "trusts dev domain 'equations' again" in b.reason for b in refused)


def test_a_round_whose_anchor_failed_is_no_evidence_against_its_workers(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    policy = initial_policy(SPEC)
    for r in (1, 2):  # the stack itself was broken: every trial failed, the anchor too
        c.run(r, "c01-anchor", role="anchor", skill=0.6, failure="step_failed")
        c.run(
            r,
            "c02-schedule",
            axis="schedule",
            skill=0.6,
            failure="step_failed",
            changes=[change("schedule", "warmup", 10, 10 + r)],
        )
        policy = step(c, policy)
    assert policy.dead_ends == []
    assert all(a.status == "active" for a in policy.axes)


def test_an_external_uptick_inside_the_noise_margin_is_not_progress(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    policy = initial_policy(SPEC)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.700)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.6)
    policy = step(c, policy)
    margin = policy.noise.external_margin()
    c.run(2, "c01-anchor", role="anchor", skill=0.6, external=0.700 + margin / 2)  # a lucky draw, not a gain
    c.run(2, "c02-optimizer", axis="optimizer", skill=0.6)
    policy = step(c, policy)
    assert policy.rounds_without_external_gain == 1
    assert policy.best_external == 0.700


def test_a_second_free_form_dead_end_on_an_axis_is_recorded(tmp_path: Path) -> None:
    """Two harmful edits on one axis that declared no knob change are two dead ends, not one."""
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(1, "c02-data_mix", axis="data_mix", skill=0.45).rationale = "drop the short examples"
    second = step(c, initial_policy(SPEC))
    assert [d.description for d in second.dead_ends] == ["data_mix: drop the short examples"]
    c.run(2, "c01-anchor", role="anchor", skill=0.6)
    c.run(2, "c02-data_mix", axis="data_mix", skill=0.45).rationale = "repeat the long examples twice"
    c.run(2, "c03-data_mix", axis="data_mix", skill=0.45).rationale = "drop the short examples"  # already there
    third = step(c, second)
    assert [(d.round, d.description) for d in third.dead_ends] == [
        (1, "data_mix: drop the short examples"),
        (2, "data_mix: repeat the long examples twice"),
    ]


def test_a_change_of_two_knobs_charges_neither(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    both = [change("schedule", "warmup", 10, 20), change("optimizer", "lr", 0.001, 0.003)]
    c.run(1, "c02-schedule", axis="schedule", skill=0.45, changes=both)
    c.run(1, "c03-schedule", axis="schedule", skill=0.6, failure="oom", changes=both)
    second = step(c, initial_policy(SPEC))
    assert second.dead_ends == []
    skipped = [p.reason for p in second.changelog if p.action == "dead_end_not_charged"]
    assert len(skipped) == 2 and all("changed 2 knobs (schedule.warmup, optimizer.lr)" in r for r in skipped)
    # the same loss from a change that isolated its knob is charged to it
    c.run(2, "c01-anchor", role="anchor", skill=0.6)
    c.run(2, "c02-schedule", axis="schedule", skill=0.45, changes=both[:1])
    third = step(c, second)
    assert [(d.axis, d.knob, d.direction) for d in third.dead_ends] == [("schedule", "warmup", "increase")]


def test_a_loss_inside_the_noise_threshold_makes_no_dead_end(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    c.run(
        1, "c02-optimizer", axis="optimizer", skill=0.57, changes=[change("optimizer", "lr", 0.001, 0.0005, "decrease")]
    )
    second = step(c, initial_policy(SPEC))
    assert second.noise.threshold is not None and second.noise.threshold > 0.03  # the loss, 0.03, is inside it
    assert second.dead_ends == []


def test_a_flat_external_target_that_could_not_resolve_the_gains_rotates_nothing(tmp_path: Path) -> None:
    """The issue's puzzles split: anchors so noisy on the external target that a gain of the size tested would
    not have shown. Two flat rounds there are no evidence against the categories explored."""
    c = SyntheticCampaign(tmp_path)
    policy = initial_policy(SPEC)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.72)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.6, external=0.71)
    policy = step(c, policy)
    for r, anchor_external in ((2, 0.62), (3, 0.68)):
        c.run(r, "c01-anchor", role="anchor", skill=0.6, external=anchor_external)
        c.run(r, "c02-optimizer", axis="optimizer", skill=0.61, external=0.71)
        c.run(r, "c03-schedule", axis="schedule", skill=0.6, external=0.705)
        policy = step(c, policy)
    assert policy.rounds_without_external_gain == 2
    assert all(a.status == "active" for a in policy.axes)
    deferred = [p.reason for p in policy.changelog if p.action == "rotation_deferred"]
    assert len(deferred) == 1 and "could not have resolved" in deferred[0] and "power" in deferred[0]
    power = c.evidence(3, policy.model_copy(update={"round": 3})).calibration.external_power
    assert power is not None and power.resolves is False and power.plateau_rounds == [2, 3]


def test_the_proxy_ask_follows_the_metric_direction() -> None:
    from evotrain.policy.meta_rules import proxy_ask

    assert "lower the dev score on equations while raising the external score" in proxy_ask("equations", 1.0)
    assert "raise the dev score on equations while lowering the external score" in proxy_ask("equations", -1.0)


def test_a_policy_written_with_the_old_mode_name_still_reads() -> None:
    old = initial_policy(SPEC).model_dump(mode="json")
    old["objective"]["mode"] = "maximize_dev"
    assert Policy.model_validate(old).objective.mode == "optimize_dev"
    assert "maximize" not in render_policy_markdown(Policy.model_validate(old))


KNOBS = {
    "optimizer.lr": 0.001,
    "schedule.warmup": 10,
    "data_mix.mix": {"cipher": 1.0, "equations": 1.0, "numeral": 1.0},
}
LR2 = BASE_RECIPE.replace("lr = 0.001", "lr = 0.002")
WARM30 = BASE_RECIPE.replace("warmup = 10", "warmup = 30")


def _two_small_wins(c: SyntheticCampaign) -> None:
    """Round 1: two anchors, two changes that gain a little (+0.025, +0.03: under the 0.04 threshold, over half of
    it), one that gains less (+0.01), and one whose gain sits in one domain (equations)."""
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.70, knob_values=KNOBS)
    c.run(1, "c09-anchor", role="anchor", skill=0.6, seed=1, knob_values=KNOBS)
    lr = change("optimizer", "lr", 0.001, 0.002)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.625, recipe=LR2, changes=[lr],
          knob_values={**KNOBS, "optimizer.lr": 0.002})  # fmt: skip
    warm = change("schedule", "warmup", 10, 30)
    c.run(1, "c03-schedule", axis="schedule", skill=0.63, recipe=WARM30, changes=[warm],
          knob_values={**KNOBS, "schedule.warmup": 30})  # fmt: skip
    c.run(1, "c04-schedule", axis="schedule", skill=0.61, recipe=WARM20, changes=[change("schedule", "warmup", 10, 20)],
          knob_values={**KNOBS, "schedule.warmup": 20})  # fmt: skip
    mix = change("data_mix", "mix", 1.0, 2.0)
    mix = mix.model_copy(update={"key": "mix.equations"})
    c.run(1, "c05-data_mix", axis="data_mix", skill={"cipher": 0.6, "equations": 0.75, "numeral": 0.6},
          recipe=BASE_RECIPE.replace("equations = 1.0", "equations = 2.0"), changes=[mix],
          knob_values={**KNOBS, "data_mix.mix": {"cipher": 1.0, "equations": 2.0, "numeral": 1.0}})  # fmt: skip


def test_promising_changes_under_the_threshold_are_run_together_next_round(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _two_small_wins(c)
    nxt = step(c, initial_policy(SPEC))
    assert nxt.standing_recipe.source is None
    # the best first; the smaller schedule change loses its knob to the better one; the concentrated gain waits for
    # the external target (it is re-run instead); the +0.01 change is under half the threshold
    assert nxt.combine == ["r0001/c03-schedule", "r0001/c02-optimizer"]
    assert nxt.replicate == ["r0001/c05-data_mix"]
    reason = next(p.reason for p in nxt.changelog if p.action == "combine")
    assert "r0001/c03-schedule (+0.0300 over 1 run(s))" in reason and "c04" not in reason
    # the changes it holds are not re-run one by one as well: the combination measures them
    assert "r0001/c02-optimizer" not in nxt.replicate
    assert "Run together, on the standing recipe" in render_policy_markdown(nxt)


def test_a_combination_that_wins_is_promoted_and_one_that_loses_drops_its_changes(tmp_path: Path) -> None:
    for skill, promoted in ((0.68, True), (0.59, False)):
        c = SyntheticCampaign(tmp_path / str(promoted))
        _two_small_wins(c)
        r2 = step(c, initial_policy(SPEC))
        both = {**KNOBS, "optimizer.lr": 0.002, "schedule.warmup": 30}
        c.run(2, "c01-anchor", role="anchor", skill=0.6, external=0.70, knob_values=KNOBS)
        combined = LR2.replace("warmup = 10", "warmup = 30")
        changes = [change("schedule", "warmup", 10, 30), change("optimizer", "lr", 0.001, 0.002)]
        c.run(2, "c02-combination", role="combination", combines=r2.combine, skill=skill, recipe=combined,
              changes=changes, external=0.74 if promoted else 0.69, knob_values=both)  # fmt: skip
        c.run(2, "c03-data_mix", axis="data_mix", skill=0.61, recipe=WARM20, knob_values=KNOBS,
              changes=[change("schedule", "warmup", 10, 20)])  # fmt: skip
        r3 = step(c, r2)
        if promoted:
            assert r3.standing_recipe.source == "r0002/c02-combination"
            assert {ch.key for ch in r3.standing_recipe.changes} == {"warmup", "lr"}
            assert r3.combine == []  # its changes are in the standing recipe now
        else:
            assert r3.standing_recipe.source is None and r3.combine == []
            dropped = next(p.reason for p in r3.changelog if p.action == "combination_dropped")
            assert "r0001/c03-schedule, r0001/c02-optimizer did not beat its anchor" in dropped


def test_a_combination_that_gains_under_the_threshold_carries_its_changes_over(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _two_small_wins(c)
    r2 = step(c, initial_policy(SPEC))
    both = {**KNOBS, "optimizer.lr": 0.002, "schedule.warmup": 30}
    c.run(2, "c01-anchor", role="anchor", skill=0.6, external=0.70, knob_values=KNOBS)
    c.run(2, "c02-combination", role="combination", combines=r2.combine, skill=0.615, knob_values=both,
          recipe=LR2.replace("warmup = 10", "warmup = 30"),
          changes=[change("schedule", "warmup", 10, 30), change("optimizer", "lr", 0.001, 0.002)])  # fmt: skip
    mix = change("data_mix", "mix", 1.0, 1.5).model_copy(update={"key": "mix.cipher"})
    c.run(2, "c03-data_mix", axis="data_mix", skill=0.63, changes=[mix],
          recipe=BASE_RECIPE.replace("cipher = 1.0", "cipher = 1.5"),
          knob_values={**KNOBS, "data_mix.mix": {"cipher": 1.5, "equations": 1.0, "numeral": 1.0}})  # fmt: skip
    r3 = step(c, r2)
    assert r3.combine == ["r0002/c03-data_mix", "r0001/c03-schedule", "r0001/c02-optimizer"]
    reason = next(p.reason for p in r3.changelog if p.action == "combine")
    assert "r0001/c02-optimizer (carried over from the round 2 combination)" in reason
    assert "r0002/c02-combination" not in r3.replicate  # the new combination holds its changes, and more


def test_a_dev_win_the_external_target_contradicts_is_rerun_only_within_the_external_noise(tmp_path: Path) -> None:
    for external, rerun in ((0.69, True), (0.60, False)):
        c = SyntheticCampaign(tmp_path / str(rerun))
        c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.70, external_n=400)
        c.run(1, "c09-anchor", role="anchor", skill=0.6, seed=1)
        c.run(1, "c02-optimizer", axis="optimizer", skill=0.75, external=external, recipe=LR3,
              changes=[change("optimizer", "lr", 0.001, 0.003)])  # fmt: skip
        nxt = step(c, initial_policy(SPEC))
        assert nxt.standing_recipe.source is None
        if rerun:
            assert nxt.replicate == ["r0001/c02-optimizer"]
            reason = next(p.reason for p in nxt.changelog if p.action == "replicate")
            assert "within the external noise, so one more seed and probe" in reason
        else:
            assert nxt.replicate == []
            reason = next(p.reason for p in nxt.changelog if p.action == "not_promoted")
            assert "no better than its round's anchor" in reason


def test_a_gain_mostly_in_an_untrusted_domain_needs_the_external_target_even_when_reweighting_dilutes_it(
    tmp_path: Path,
) -> None:
    # +0.35 on equations and +0.05 on the two others: under the reweighted objective equations carries only 47 % of
    # the gain (0.25 · 0.35 against 0.05 + 0.05), under equal weights 78 %: the proxy's pull, read on the raw gains
    for external, promoted in ((0.712, False), (0.80, True)):
        c = SyntheticCampaign(tmp_path / str(promoted))
        third = _distrust_equations(c)
        c.run(3, "c01-anchor", role="anchor", skill=0.6, external=0.71, external_n=2000)
        c.run(
            3,
            "c02-data_mix",
            axis="data_mix",
            external=external,
            skill={"cipher": 0.65, "equations": 0.95, "numeral": 0.65},
            recipe=LR3,
        )
        fourth = step(c, third)
        if promoted:
            assert fourth.standing_recipe.source == "r0003/c02-data_mix"
        else:
            assert fourth.standing_recipe.source is None and fourth.replicate == []
            reason = next(p.reason for p in fourth.changelog if p.action == "not_promoted")
            assert "78% of its dev gain comes from equations, a domain the objective no longer trusts" in reason
