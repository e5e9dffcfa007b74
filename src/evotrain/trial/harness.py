"""The trial harness: run a candidate's prepare → train → evaluate (every checkpoint) → select, resumably.

The harness, never the worker, runs the steps and reads their outputs, so a worker cannot forge a score. Every
step goes through `run_step`, which records it in the candidate's trace: calling `run_trial_steps` again after
a crash re-runs only what had not finished. A failing step ends the trial and is returned as a `Failure` (a
failed trial is a result, not an error); mistakes in evotrain.toml still raise ConfigError.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, ValidationError

from evotrain.errors import ConfigError
from evotrain.executors.protocol import Executor, StepOutcome
from evotrain.records.layout import CandidatePaths
from evotrain.records.manifest import CheckpointEval, Cost, Failure, Selection, StepCost
from evotrain.records.policy import SelectionObjective
from evotrain.substrate.spec import Step, SubstrateSpec, checkpoint_folders
from evotrain.trial.evaluation import BadOutputError, checkpoint_eval, load_eval_report, select_checkpoint
from evotrain.trial.steps import build_request, failure_class, run_step
from evotrain.trial.trace import Trace


class TrialOutcome(BaseModel):
    """What the steps of one trial produced: the harness's part of the manifest."""

    checkpoints: list[CheckpointEval] = []
    selected: Selection | None = None
    training: dict[str, float] = {}
    training_warnings: list[str] = []  # summary numbers left out as not finite
    failure: Failure | None = None
    cost: Cost = Cost()


class Predictions(BaseModel):
    predictions: dict[str, str]


class _Steps:
    """Runs one candidate's steps, adding each one's cost; the first failure is kept and ends the trial."""

    def __init__(
        self, candidate: CandidatePaths, spec: SubstrateSpec, seed: int, executor: Executor, trace: Trace
    ) -> None:
        self.candidate = candidate
        self.spec = spec
        self.seed = seed
        self.executor = executor
        self.trace = trace
        self.cost = Cost()

    def run(self, step: Step, output: Path, *, checkpoint: str | None = None, required: bool = False) -> Failure | None:
        label = step if checkpoint is None else f"{step}/{checkpoint}"
        log_stem = step if checkpoint is None else f"{step}-{checkpoint}"
        request = build_request(
            key=f"{self.candidate.candidate_id}/{label}",
            step=step,
            spec=self.spec,
            sandbox=self.candidate.sandbox,
            work=self.candidate.work,
            seed=self.seed,
            output=output,
            logs=self.candidate.logs / log_stem,
            checkpoint=self.candidate.checkpoints / checkpoint if checkpoint is not None else None,
        )
        # train restarts from scratch: its checkpoints go with it; other steps own just their output file
        fresh = [output, self.candidate.checkpoints] if step == "train" else [output]
        outcome = run_step(
            self.executor, request, self.trace, required_output=output if required else None, fresh=fresh
        )
        self._add_cost(label, outcome)
        cls = failure_class(outcome)
        if cls is None:
            return None
        logs = f"logs: {request.stdout}, {request.stderr}"
        return Failure(
            failure_class=cls, step=label, message=f"{outcome.message} ({logs})", exit_code=outcome.exit_code
        )

    def _add_cost(self, label: str, outcome: StepOutcome) -> None:
        self.cost.steps.append(
            StepCost(step=label, status=outcome.status, wall_s=outcome.wall_s, cpu_s=outcome.cpu_s, gpu_s=outcome.gpu_s)
        )
        self.cost.wall_s += outcome.wall_s
        self.cost.cpu_s += outcome.cpu_s
        self.cost.gpu_s += outcome.gpu_s


def _make_dirs(candidate: CandidatePaths) -> None:
    for folder in (candidate.work, candidate.checkpoints, candidate.eval_dir, candidate.logs):
        folder.mkdir(parents=True, exist_ok=True)


def list_checkpoints(candidate: CandidatePaths) -> list[str]:
    """Checkpoint folders `train` wrote, in training order (by name); hidden (in-progress) folders are skipped."""
    return [p.name for p in checkpoint_folders(candidate.checkpoints)]


def read_training_summary(path: Path) -> dict[str, float] | Failure:
    """The optional `{output}` of train: a JSON object whose numeric values go into the manifest.

    Values that are not finite numbers (a status string, a nested table) are left out rather than failing a
    trial whose training already ran.
    """
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Failure(failure_class="bad_output", step="train", message=f"{path}: training summary is not JSON: {exc}")
    if not isinstance(raw, dict):
        return Failure(
            failure_class="bad_output", step="train", message=f"{path}: training summary must be a JSON object"
        )
    return {
        str(k): float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def non_finite_training_values(path: Path) -> list[str]:
    """The training summary's numbers left out because they are not finite (`loss = nan`): a diverged run the
    manifest must say, not drop silently."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(raw, dict):
        return []
    return [f"{k} = {v}" for k, v in raw.items() if isinstance(v, float) and not math.isfinite(v)]


def run_trial_steps(
    *,
    candidate: CandidatePaths,
    campaign_root: Path,
    spec: SubstrateSpec,
    objective: SelectionObjective,
    seed: int,
    executor: Executor,
    trace: Trace,
) -> TrialOutcome:
    """Run prepare (if declared) → train → evaluate every checkpoint → select one, by the selection objective."""
    _make_dirs(candidate)
    steps = _Steps(candidate, spec, seed, executor, trace)
    result = TrialOutcome()
    result.cost = steps.cost  # the same object: steps add their costs to it as they run

    def failed(failure: Failure) -> TrialOutcome:
        result.failure = failure
        return result

    if spec.commands.prepare is not None:
        failure = steps.run("prepare", candidate.work / "prepare.json")
        if failure:
            return failed(failure)
    failure = steps.run("train", candidate.work / "train_summary.json")
    if failure:
        return failed(failure)
    summary = read_training_summary(candidate.work / "train_summary.json")
    if isinstance(summary, Failure):
        return failed(summary)
    result.training = summary
    result.training_warnings = non_finite_training_values(candidate.work / "train_summary.json")

    names = list_checkpoints(candidate)
    if not names:
        return failed(
            Failure(
                failure_class="no_checkpoints",
                step="train",
                message=f"train wrote no checkpoint folder under {candidate.checkpoints}",
            )
        )
    if spec.commands.evaluate_all is not None:
        failure = evaluate_all(steps, candidate, names)
        if failure:
            return failed(failure)
    for name in names:
        report_path = candidate.eval_dir / f"{name}.json"
        if spec.commands.evaluate_all is None:
            failure = steps.run("evaluate", report_path, checkpoint=name, required=True)
            if failure:
                return failed(failure)
        try:
            report = load_eval_report(report_path, spec.metric)
        except BadOutputError as err:
            step = "evaluate_all" if spec.commands.evaluate_all is not None else f"evaluate/{name}"
            return failed(Failure(failure_class="bad_output", step=step, message=err.render()))
        relpath = _campaign_relative(report_path, campaign_root)
        result.checkpoints.append(checkpoint_eval(name, report, relpath, objective, spec.metric))
    result.selected = select_checkpoint(result.checkpoints, objective, spec.metric)
    return result


def evaluate_all(steps: _Steps, candidate: CandidatePaths, names: list[str]) -> Failure | None:
    """Run `evaluate_all` once for every checkpoint; each must get its report `<name>.json` in the eval folder."""
    return steps.run("evaluate_all", candidate.eval_dir) or missing_reports(candidate.eval_dir, names)


def missing_reports(eval_dir: Path, names: list[str]) -> Failure | None:
    """After a successful `evaluate_all`: the failure naming every checkpoint whose report it did not write."""
    missing = [eval_dir / f"{name}.json" for name in names if not (eval_dir / f"{name}.json").is_file()]
    if not missing:
        return None
    return Failure(
        failure_class="missing_output",
        step="evaluate_all",
        message="exited 0 without writing the evaluation report of every checkpoint: no "
        + ", ".join(str(path) for path in missing),
        exit_code=0,
    )


def _campaign_relative(path: Path, campaign_root: Path) -> str:
    try:
        return path.resolve().relative_to(campaign_root.resolve()).as_posix()
    except ValueError:
        raise ValueError(f"{path} is not inside the campaign folder {campaign_root}") from None


def run_predict(
    *,
    candidate: CandidatePaths,
    campaign_root: Path,
    spec: SubstrateSpec,
    checkpoint: str,
    seed: int,
    executor: Executor,
    trace: Trace,
) -> Path | Failure:
    """Run `predict` on one checkpoint; return the validated predictions file, or the failure."""
    if spec.commands.predict is None:
        raise ConfigError(
            "an external submission needs predictions but the substrate declares no `predict` command",
            path=campaign_root / "substrate" / "evotrain.toml",
            fix="add [commands].predict (docs/substrate-format.md)",
        )
    if not (candidate.checkpoints / checkpoint).is_dir():
        raise ValueError(f"{candidate.candidate_id} has no checkpoint {checkpoint!r} under {candidate.checkpoints}")
    candidate.predictions_dir.mkdir(parents=True, exist_ok=True)
    candidate.logs.mkdir(parents=True, exist_ok=True)
    output = candidate.predictions_dir / f"{checkpoint}.json"
    steps = _Steps(candidate, spec, seed, executor, trace)
    failure = steps.run("predict", output, checkpoint=checkpoint, required=True)
    if failure:
        return failure
    try:
        Predictions.model_validate_json(output.read_bytes())
    except ValidationError as err:
        fields = "; ".join(f"field `{'.'.join(str(p) for p in e['loc'])}`: {e['msg']}" for e in err.errors()[:5])
        return Failure(
            failure_class="bad_output",
            step=f"predict/{checkpoint}",
            message=f'{output}: not a predictions file {{"predictions": {{id: answer text}}}}: {fields}',
        )
    return output
