"""The collector on a synthetic campaign on disk: five sections, paired gains, calibration, surprises, audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evotrain.evidence.render import render_evidence_markdown
from evotrain.policy.initial import initial_policy
from evotrain.records.evidence import SECTIONS, Evidence
from evotrain.records.manifest import Manifest, Violation
from evotrain.records.policy import DeadEnd, StandingRecipe

from .synthetic_campaign import BASE_RECIPE, DOMAINS, SPEC, SyntheticCampaign, change, diff_for

LR3 = BASE_RECIPE.replace("lr = 0.001", "lr = 0.003")


def _round_one(c: SyntheticCampaign) -> None:
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.60)
    c.run(
        1,
        "c02-optimizer",
        axis="optimizer",
        skill=0.7,
        external=0.66,
        recipe=LR3,
        changes=[change("optimizer", "lr", 0.001, 0.003)],
    )
    c.run(1, "c03-data_mix", axis="data_mix", skill={"cipher": 0.6, "equations": 0.8, "numeral": 0.6}, external=0.6)
    c.run(1, "c04-schedule", axis="schedule", skill=0.6, failure="oom")


def test_five_sections_in_order_in_json_and_markdown(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _round_one(c)
    evidence = c.evidence(1, initial_policy(SPEC))
    keys = [k for k in json.loads(evidence.model_dump_json()) if k in SECTIONS]
    assert keys == list(SECTIONS)
    md = render_evidence_markdown(evidence)
    headings = [line[3:].split()[0] for line in md.splitlines() if line.startswith("## ")]
    assert headings == list(SECTIONS)
    assert Evidence.model_validate_json(evidence.model_dump_json()) == evidence


def test_candidates_get_paired_gains_against_the_anchor(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _round_one(c)
    evidence = c.evidence(1, initial_policy(SPEC))
    by_id = {s.candidate_id: s for s in evidence.candidates}
    assert evidence.candidates[0].role == "anchor"
    opt = by_id["r0001/c02-optimizer"]
    assert opt.gain is not None and abs(opt.gain - 0.1) < 1e-9
    assert opt.gain_interval is not None and opt.gain_interval.low < 0.1 < opt.gain_interval.high
    assert "paired bootstrap" in opt.gain_method
    assert opt.above_noise  # 0.1 ≫ k·item sd (≈ 0.04)
    assert opt.recipe_files == {"recipe.toml": LR3}  # what a promotion would carry
    assert set(opt.domain_gain_intervals) == set(DOMAINS)
    mix = by_id["r0001/c03-data_mix"]
    assert abs(mix.domain_gains["equations"] - 0.2) < 1e-9 and abs(mix.domain_gains["cipher"]) < 1e-9
    assert by_id["r0001/c04-schedule"].status == "oom" and by_id["r0001/c04-schedule"].gain is None
    verdicts = {p.axis: p.verdict for p in evidence.patterns}
    assert verdicts == {"optimizer": "promising", "data_mix": "promising", "schedule": "failed"}


def test_without_item_scores_the_collector_falls_back_to_unpaired_statistics(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, items=False)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.7, items=False)
    s = c.evidence(1, initial_policy(SPEC)).candidates[1]
    assert "unpaired" in s.gain_method
    assert s.gain_interval is not None and s.gain_interval.low < s.gain < s.gain_interval.high  # type: ignore[operator]


def test_missing_report_is_a_surprise_not_a_crash(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6)
    m = c.run(1, "c02-optimizer", axis="optimizer", skill=0.7)
    (tmp_path / m.checkpoints[0].report).unlink()
    evidence = c.evidence(1, initial_policy(SPEC))
    assert any(s.kind == "missing_report" for s in evidence.surprises)
    assert "unpaired" in evidence.candidates[1].gain_method


def test_recipe_files_come_from_the_manifests_not_the_sandboxes(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _round_one(c)
    for m in c.manifests:
        shutil.rmtree(c.paths.round(1).candidate(m.candidate_id.split("/", 1)[1]).sandbox)
    evidence = c.evidence(1, initial_policy(SPEC))
    assert {s.candidate_id: s.recipe_files for s in evidence.candidates}["r0001/c02-optimizer"] == {"recipe.toml": LR3}
    # A manifest written before it recorded its recipe files still reads; its candidate has none to promote.
    old = json.loads(c.manifests[1].model_dump_json())
    del old["recipe_files"], old["recipe_files_problem"]
    c.manifests[1] = Manifest.model_validate(old)
    evidence = c.evidence(1, initial_policy(SPEC))
    assert evidence.candidates[1].gain is not None and evidence.candidates[1].recipe_files is None
    assert not any(s.kind == "unpromotable_recipe" for s in evidence.surprises)
    # Edits a standing recipe cannot carry are recorded at trial time and surface as a surprise.
    problem = "the sandbox deleted editable file(s) pipeline/build.py; a standing recipe cannot delete"
    c.manifests[1] = c.manifests[1].model_copy(update={"recipe_files_problem": problem})
    evidence = c.evidence(1, initial_policy(SPEC))
    assert evidence.candidates[1].recipe_files is None
    assert [s.description for s in evidence.surprises if s.kind == "unpromotable_recipe"] == [problem]


def test_noise_band_combines_seed_and_item_noise(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    policy = initial_policy(SPEC)
    c.run(1, "c01-anchor", role="anchor", skill=0.60)
    first = c.evidence(1, policy).calibration
    assert first.seed_sd is None and first.item_sd is not None
    assert first.dev_threshold is not None and abs(first.dev_threshold - 2 * first.item_sd) < 1e-12
    c.run(2, "c01-anchor", role="anchor", skill=0.64)  # same recipe, another seed
    cal = c.evidence(2, policy).calibration
    assert cal.seed_sd is not None and abs(cal.seed_sd - 0.04 / 2**0.5) < 1e-9
    assert cal.dev_noise_band is not None and cal.item_sd is not None
    assert abs(cal.dev_noise_band**2 - (cal.seed_sd**2 + cal.item_sd**2)) < 1e-12
    assert cal.external_noise_source == "policy default"


def test_external_noise_band_comes_from_anchors_then_binomial(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    policy = initial_policy(SPEC)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.5, external_n=400)
    cal = c.evidence(1, policy).calibration
    assert cal.external_noise_source == "binomial" and abs(cal.external_noise_band - 0.025) < 1e-12  # type: ignore[operator]
    c.run(2, "c01-anchor", role="anchor", skill=0.6, external=0.54)
    cal = c.evidence(2, policy).calibration
    assert cal.external_noise_source == "anchors" and abs(cal.external_noise_band - 0.04 / 2**0.5) < 1e-9  # type: ignore[operator]


def test_anchors_closer_than_the_binomial_sd_do_not_shrink_the_external_band(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    policy = initial_policy(SPEC)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.5, external_n=400)
    c.run(2, "c01-anchor", role="anchor", skill=0.6, external=0.505, external_n=400)  # two lucky close draws
    cal = c.evidence(2, policy).calibration
    assert cal.external_noise_source == "binomial"
    assert cal.external_noise_band == pytest.approx((0.505 * 0.495 / 400) ** 0.5)


def _proxy_campaign(c: SyntheticCampaign, *, transfers: bool) -> None:
    """Rounds where candidates push `equations` dev up; the external target follows only if `transfers`."""
    for r, anchor_external in zip((1, 2, 3), (0.70, 0.71, 0.69), strict=True):
        c.run(r, "c01-anchor", role="anchor", skill=0.6, external=anchor_external, external_n=2000)
        for i, lift in enumerate((0.15, 0.2)):
            external = anchor_external + (lift / 3 if transfers else 0.004 * (i - 0.5))
            c.run(
                r,
                f"c0{i + 2}-data_mix",
                axis="data_mix",
                external=external,
                skill={"cipher": 0.6, "equations": 0.6 + lift, "numeral": 0.6},
            )


def test_calibration_flags_a_decoupled_proxy_domain(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _proxy_campaign(c, transfers=False)
    evidence = c.evidence(3, initial_policy(SPEC))
    assert evidence.calibration.decoupled_domains == ["equations"]
    eq = next(d for d in evidence.calibration.per_domain if d.domain == "equations")
    assert eq.dev_gain_above_noise == 6 and eq.external_flat_among_them == 6 and eq.points == 6
    assert any(s.kind == "decoupled_proxy" for s in evidence.surprises)
    assert len(evidence.calibration.points) == 9
    assert evidence.calibration.spearman is not None and evidence.calibration.spearman_interval is not None


def test_calibration_does_not_flag_a_domain_whose_gains_transfer(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    _proxy_campaign(c, transfers=True)
    cal = c.evidence(3, initial_policy(SPEC)).calibration
    assert cal.decoupled_domains == []
    assert cal.slope is not None and cal.slope > 0.5
    assert cal.spearman is not None and cal.spearman > 0.5


@pytest.mark.parametrize("transfers", [False, True])
def test_a_proxy_domain_is_judged_by_its_excess_over_the_other_domains(tmp_path: Path, transfers: bool) -> None:
    """Candidates that move several knobs at once raise every domain (+0.1, and the external target with them)
    and `equations` by a further 0.15–0.2: the external gain is real, but it holds nothing of the extra equations
    gain unless `transfers`. Judged on the raw gains the domain would pass as transferring either way."""
    c = SyntheticCampaign(tmp_path)
    for r, anchor_external in zip((1, 2, 3), (0.70, 0.71, 0.69), strict=True):
        c.run(r, "c01-anchor", role="anchor", skill=0.6, external=anchor_external, external_n=2000)
        for i, lift in enumerate((0.15, 0.2)):
            external = anchor_external + 0.1 + (lift / 3 if transfers else 0.004 * (i - 0.5))
            skill = {"cipher": 0.7, "equations": 0.7 + lift, "numeral": 0.7}
            c.run(r, f"c0{i + 2}-optimizer", axis="optimizer", external=external, skill=skill)
    cal = c.evidence(3, initial_policy(SPEC)).calibration
    eq = next(d for d in cal.per_domain if d.domain == "equations")
    assert eq.dev_gain_above_noise == 6
    assert cal.decoupled_domains == ([] if transfers else ["equations"])
    assert eq.external_flat_among_them == (0 if transfers else 6)


def test_surprises_failed_anchor_and_dev_gain_without_external(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.7)
    c.run(1, "c02-data_mix", axis="data_mix", skill={"cipher": 0.6, "equations": 0.95, "numeral": 0.6}, external=0.69)
    kinds = {s.kind for s in c.evidence(1, initial_policy(SPEC)).surprises}
    assert "dev_gain_without_external" in kinds
    c.run(2, "c01-anchor", role="anchor", skill=0.6, failure="step_failed")
    c.run(2, "c02-optimizer", axis="optimizer", skill=0.7)
    evidence = c.evidence(2, initial_policy(SPEC))
    assert "anchor_failed" in {s.kind for s in evidence.surprises}
    assert evidence.candidates[1].gain is None


def test_rationale_audit_flags_off_axis_violation_dead_end_and_reverted_recipe(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    warm = BASE_RECIPE.replace("warmup = 10", "warmup = 50")
    policy = initial_policy(SPEC).model_copy(
        update={
            "standing_recipe": StandingRecipe(files={"recipe.toml": warm}, diff=diff_for(warm), source="r0001/c02-x"),
            "dead_ends": [DeadEnd(round=1, axis="optimizer", knob="lr", direction="increase", description="lr up")],
        }
    )
    c.run(2, "c01-anchor", role="anchor", skill=0.6, recipe=warm)
    both = warm.replace("lr = 0.001", "lr = 0.003")
    c.run(
        2, "c02-optimizer", axis="optimizer", skill=0.6, recipe=both, changes=[change("optimizer", "lr", 0.001, 0.003)]
    )
    c.run(2, "c03-schedule", axis="schedule", skill=0.6, recipe=both, changes=[change("optimizer", "lr", 0.001, 0.003)])
    c.run(
        2,
        "c04-data_mix",
        axis="data_mix",
        skill=0.6,
        recipe=BASE_RECIPE.replace("numeral = 1.0", "numeral = 2.0"),
        changes=[change("data_mix", "mix", {"numeral": 1.0}, {"numeral": 2.0}, "set")],
    )
    c.run(
        2,
        "c05-optimizer",
        axis="optimizer",
        skill=0.6,
        recipe=warm,
        failure="violation",
        violations=[Violation(path="eval/evaluate.py", kind="frozen_edit")],
    )
    audit = {a.candidate_id: a for a in c.evidence(2, policy).rationale_audit}
    assert audit["r0002/c01-anchor"].stayed_on_axis and audit["r0002/c01-anchor"].policy_compliant
    assert audit["r0002/c02-optimizer"].stayed_on_axis and not audit["r0002/c02-optimizer"].policy_compliant
    assert any("dead-end" in n for n in audit["r0002/c02-optimizer"].notes)
    assert not audit["r0002/c03-schedule"].stayed_on_axis
    mix = audit["r0002/c04-data_mix"]
    assert mix.stayed_on_axis and not mix.policy_compliant
    assert any("warmup = 50" in n for n in mix.notes)  # dropped the standing recipe's warmup without saying so
    assert not audit["r0002/c05-optimizer"].within_editable_paths
    assert audit["r0002/c05-optimizer"].policy_compliant


def _evidence_with_kind(c: SyntheticCampaign, kind: str) -> Evidence:
    from evotrain.evidence.collector import collect_evidence

    spec = SPEC.model_copy(update={"metric": SPEC.metric.model_copy(update={"kind": kind})})
    return collect_evidence(
        round_no=1,
        policy=initial_policy(spec),
        spec=spec,
        round_manifests=c.round_manifests(1),
        history=c.history(1),
        campaign_root=c.root,
    )


def test_item_noise_follows_the_metric_kind(tmp_path: Path) -> None:
    import numpy as np

    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.5, external_n=400)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.7)
    auto = c.evidence(1, initial_policy(SPEC)).calibration
    assert auto.metric_kind == "success_rate" and "every item score" in auto.metric_kind_how
    assert "binomial" in auto.noise_note and auto.external_noise_source == "binomial"
    declared = _evidence_with_kind(c, "success_rate").calibration
    assert declared.item_sd == auto.item_sd and "declared" in declared.metric_kind_how
    # declared continuous: the same 0/1 items measured by their sample sd (n − 1), and no binomial external band
    cont = _evidence_with_kind(c, "continuous").calibration
    items = (c.difficulty["cipher"] < 0.6).astype(float)
    per_domain = float(np.std(items, ddof=1)) / np.sqrt(len(items))
    assert cont.metric_kind == "continuous" and cont.item_sd == pytest.approx(per_domain / np.sqrt(3))
    assert "per-item" in cont.noise_note and "binomial" not in cont.noise_note
    assert cont.external_noise_source == "dev band (assumed)"
    assert cont.external_noise_band == pytest.approx(cont.dev_noise_band)


def test_a_continuous_metric_without_item_scores_says_what_it_cannot_see(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, items=False)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.7, items=False)
    evidence = _evidence_with_kind(c, "continuous")
    cal = evidence.calibration
    assert cal.item_sd is None and cal.dev_threshold is None
    assert "item noise unknown" in cal.noise_note and "no item scores" in cal.noise_note
    assert evidence.candidates[1].gain_interval is None  # counts give no spread for a continuous metric


def test_the_external_power_is_shown_in_the_evidence(tmp_path: Path) -> None:
    c = SyntheticCampaign(tmp_path)
    c.run(1, "c01-anchor", role="anchor", skill=0.6, external=0.70, external_n=300)
    c.run(1, "c02-optimizer", axis="optimizer", skill=0.7, external=0.74)
    evidence = c.evidence(1, initial_policy(SPEC))
    power = evidence.calibration.external_power
    assert power is not None and power.n == 300 and power.sd_source == "binomial"
    assert power.effect is not None and power.effect == pytest.approx(0.1)  # the best dev gain submitted
    assert power.power is not None and power.resolves == (power.power >= 0.8)
    md = render_evidence_markdown(evidence)
    assert "- external power: " in md and "300 external items" in md and "resolves gains of" in md
