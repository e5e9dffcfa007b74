"""The trial harness end to end on the tiny substrate (real processes, real files), failures and resumption."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from evotrain.executors.local import LocalExecutor
from evotrain.records.layout import CandidatePaths
from evotrain.records.manifest import Failure
from evotrain.records.policy import Policy, SelectionObjective
from evotrain.substrate.spec import Commands, ResourceOverride, SubstrateSpec
from evotrain.trial.harness import TrialOutcome, run_predict, run_trial_steps
from evotrain.trial.trace import Trace

Candidate = tuple[Path, CandidatePaths]


def run(tiny_candidate: Candidate, spec: SubstrateSpec, *, policy: Policy | None = None, seed: int = 1) -> TrialOutcome:
    campaign_root, candidate = tiny_candidate
    return run_trial_steps(
        candidate=candidate,
        campaign_root=campaign_root,
        spec=spec,
        objective=(policy or Policy(round=1)).objective,
        seed=seed,
        executor=LocalExecutor(cpus=2, gpus=[], term_grace_s=0.5),
        trace=Trace(candidate.trace),
    )


def with_commands(spec: SubstrateSpec, **commands: str) -> SubstrateSpec:
    return spec.model_copy(update={"commands": Commands(**{**spec.commands.model_dump(), **commands})})


def attempts(log: Path) -> int:
    return log.read_text().count("=== evotrain ")


def test_trial_end_to_end(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    campaign_root, candidate = tiny_candidate
    outcome = run(tiny_candidate, tiny_spec)
    assert outcome.failure is None
    assert [c.checkpoint for c in outcome.checkpoints] == [f"step-{s:06d}" for s in (50, 100, 150, 200)]
    first = outcome.checkpoints[0]
    assert set(first.domains) == {"alpha", "beta", "gamma"} and first.domains["alpha"].n == 150
    assert (campaign_root / first.report).is_file() and first.report.startswith("rounds/r0001/candidates/")
    assert outcome.selected is not None
    best = max(outcome.checkpoints, key=lambda c: c.objective)
    assert outcome.selected.objective == best.objective
    assert outcome.training["steps"] == 200 and "final_loss" in outcome.training
    assert [s.step for s in outcome.cost.steps] == ["prepare", "train"] + [
        f"evaluate/{c.checkpoint}" for c in outcome.checkpoints
    ]
    assert outcome.cost.wall_s == sum(s.wall_s for s in outcome.cost.steps) > 0
    assert outcome.cost.cpu_s > 0 and outcome.cost.gpu_s == 0
    assert (candidate.logs / "evaluate-step-000050.out").exists()


def test_same_seed_same_scores_and_knobs_matter(tmp_path: Path, tiny_substrate: Path, tiny_spec: SubstrateSpec) -> None:
    def trial(name: str, seed: int, recipe_edit: tuple[str, str] | None = None) -> TrialOutcome:
        candidate = CandidatePaths(tmp_path / "campaign" / name, 1, name)
        shutil.copytree(tiny_substrate, candidate.sandbox)
        if recipe_edit:
            recipe = candidate.sandbox / "recipe.toml"
            recipe.write_text(recipe.read_text().replace(*recipe_edit))
        return run((tmp_path / "campaign", candidate), tiny_spec, seed=seed)

    a, b = trial("a", seed=3), trial("b", seed=3)
    assert [c.domains for c in a.checkpoints] == [c.domains for c in b.checkpoints]
    upweighted = trial("c", seed=3, recipe_edit=("gamma = 1.0", "gamma = 4.0"))
    assert upweighted.checkpoints[-1].domains["gamma"].score > a.checkpoints[-1].domains["gamma"].score + 0.03


def test_rerun_after_finish_runs_nothing(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    _, candidate = tiny_candidate
    first = run(tiny_candidate, tiny_spec)
    events = len(Trace(candidate.trace).events())
    second = run(tiny_candidate, tiny_spec)
    assert second == first
    assert len(Trace(candidate.trace).events()) == events
    assert attempts(candidate.logs / "train.out") == 1


def test_resume_after_a_crash_mid_trial(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    _, candidate = tiny_candidate
    first = run(tiny_candidate, tiny_spec)
    # Cut the trace back to "train finished, first evaluation started": what a kill -9 at that point leaves.
    lines = candidate.trace.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"evaluate/step-000050"' in line.replace("r0001/c01-anchor/", ""))
    candidate.trace.write_text("".join(lines[: cut + 1]))
    resumed = run(tiny_candidate, tiny_spec)
    assert [c.domains for c in resumed.checkpoints] == [c.domains for c in first.checkpoints]
    assert attempts(candidate.logs / "prepare.out") == 1 and attempts(candidate.logs / "train.out") == 1
    assert attempts(candidate.logs / "evaluate-step-000050.out") == 2
    assert Trace(candidate.trace).started_unfinished() == []


def test_failing_train_is_classified(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    _, candidate = tiny_candidate
    recipe = candidate.sandbox / "recipe.toml"
    recipe.write_text(recipe.read_text().replace('schedule = "constant"', 'schedule = "bogus"'))
    outcome = run(tiny_candidate, tiny_spec)
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "step_failed" and outcome.failure.step == "train"
    assert outcome.failure.exit_code == 1 and "train.err" in outcome.failure.message
    assert "bogus" in (candidate.logs / "train.err").read_text()
    assert outcome.checkpoints == [] and outcome.selected is None
    assert [s.status for s in outcome.cost.steps] == ["succeeded", "failed"]


def test_timeout_is_classified(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    spec = with_commands(tiny_spec, train="sleep 30")
    spec = spec.model_copy(
        update={"resources": spec.resources.model_copy(update={"train": ResourceOverride(timeout_s=0.5)})}
    )
    outcome = run(tiny_candidate, spec)
    assert outcome.failure is not None and outcome.failure.failure_class == "timeout"
    assert outcome.failure.step == "train" and outcome.cost.steps[-1].wall_s < 5


def test_missing_eval_output_is_classified(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    outcome = run(tiny_candidate, with_commands(tiny_spec, evaluate="true"))
    assert outcome.failure is not None
    assert outcome.failure.failure_class == "missing_output" and outcome.failure.step == "evaluate/step-000050"


def test_bad_eval_output_is_classified(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    bad = """echo '{"metric": "accuracy", "domains": {"alpha": {"score": 1, "n": 1}}}' > {output}"""
    outcome = run(tiny_candidate, with_commands(tiny_spec, evaluate=bad))
    assert outcome.failure is not None and outcome.failure.failure_class == "bad_output"
    assert "lacks ['beta', 'gamma']" in outcome.failure.message and "step-000050.json" in outcome.failure.message


# evaluate_all for the tiny substrate: its per-checkpoint evaluate, looped in one shell (a real stack would load
# its inference engine once and evaluate every checkpoint with it).
EVALUATE_ALL = (
    'for c in {checkpoints}/*/; do n=$(basename "$c"); '
    '{python} eval/evaluate.py --checkpoint "$c" --split dev --out {output}/"$n".json || exit 1; done'
)


def test_evaluate_all_is_one_step_with_the_same_reports(
    tmp_path: Path, tiny_substrate: Path, tiny_spec: SubstrateSpec
) -> None:
    outcomes = []
    for name, spec in (("each", tiny_spec), ("all", with_commands(tiny_spec, evaluate_all=EVALUATE_ALL))):
        candidate = CandidatePaths(tmp_path / "campaign" / name, 1, name)
        shutil.copytree(tiny_substrate, candidate.sandbox)
        outcomes.append(run((tmp_path / "campaign", candidate), spec, seed=3))
    each, together = outcomes
    assert together.failure is None
    assert [s.step for s in together.cost.steps] == ["prepare", "train", "evaluate_all"]
    assert [(c.checkpoint, c.domains) for c in together.checkpoints] == [
        (c.checkpoint, c.domains) for c in each.checkpoints
    ]
    assert together.selected == each.selected


def test_evaluate_all_missing_a_report_is_classified(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    only_first = EVALUATE_ALL.replace("|| exit 1; done", "|| exit 1; break; done")
    outcome = run(tiny_candidate, with_commands(tiny_spec, evaluate_all=only_first))
    assert outcome.failure is not None and outcome.failure.failure_class == "missing_output"
    assert outcome.failure.step == "evaluate_all" and "step-000100.json" in outcome.failure.message
    assert "step-000050.json" not in outcome.failure.message


def test_no_checkpoints_is_classified(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    outcome = run(tiny_candidate, with_commands(tiny_spec, train="true"))
    assert outcome.failure is not None and outcome.failure.failure_class == "no_checkpoints"


def test_untrusted_domain_changes_the_objective(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    objective = SelectionObjective(domain_weights={"gamma": 0.25}, untrusted_domains=["gamma"])
    outcome = run(tiny_candidate, tiny_spec, policy=Policy(round=1, objective=objective))
    for c in outcome.checkpoints:
        expected = (c.domains["alpha"].score + c.domains["beta"].score + 0.25 * c.domains["gamma"].score) / 2.25
        assert abs(c.objective - expected) < 1e-12
    assert outcome.selected is not None and "gamma=0.25 untrusted" in outcome.selected.criterion


def predict(tiny_candidate: Candidate, spec: SubstrateSpec, checkpoint: str) -> Path | Failure:
    campaign_root, candidate = tiny_candidate
    return run_predict(
        candidate=candidate,
        campaign_root=campaign_root,
        spec=spec,
        checkpoint=checkpoint,
        seed=1,
        executor=LocalExecutor(cpus=1, gpus=[]),
        trace=Trace(candidate.trace),
    )


def test_predict_and_external_score(
    tiny_candidate: Candidate, tiny_spec: SubstrateSpec, tiny_answers: Path, tiny_scorer: Path
) -> None:
    _, candidate = tiny_candidate
    outcome = run(tiny_candidate, tiny_spec)
    assert outcome.selected is not None
    predictions = predict(tiny_candidate, tiny_spec, outcome.selected.checkpoint)
    assert predictions == candidate.predictions_dir / f"{outcome.selected.checkpoint}.json"
    scored = subprocess.run(
        [sys.executable, str(tiny_scorer), "--answers", str(tiny_answers), "--predictions", str(predictions)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(scored.stdout)
    assert result["n"] == 450 and 0.6 < result["score"] < 1.0 and set(result["domains"]) == {"alpha", "beta", "gamma"}


def test_bad_predictions_are_classified(tiny_candidate: Candidate, tiny_spec: SubstrateSpec) -> None:
    run(tiny_candidate, tiny_spec)
    broken = with_commands(tiny_spec, predict="""echo '{"predictions": {"x": 1}}' > {output}""")
    failure = predict(tiny_candidate, broken, "step-000100")
    assert isinstance(failure, Failure) and failure.failure_class == "bad_output" and "predictions.x" in failure.message
