"""`evotrain check SUBSTRATE`: the anchor trial once, outside any campaign, with every output validated.

The substrate is snapshotted and forked as `init` and a round would (so frozen-path and sealing rules apply),
then the harness runs prepare → train → evaluate every checkpoint → select → predict, exactly as in a campaign.
Every evaluation report on disk is then validated against `[metric]`, not just up to the first bad one, so one
check lists every problem.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from evotrain.errors import ConfigError
from evotrain.executors.local import LocalExecutor
from evotrain.executors.protocol import Executor
from evotrain.policy.initial import initial_policy
from evotrain.records.layout import CandidatePaths
from evotrain.records.manifest import CheckpointEval, Failure, Selection
from evotrain.sandbox.fork import fork_sandbox
from evotrain.substrate.snapshot import snapshot_substrate
from evotrain.substrate.spec import Metric, SubstrateSpec, load_spec
from evotrain.trial.evaluation import BadOutputError, load_eval_report
from evotrain.trial.harness import Predictions, list_checkpoints, run_predict, run_trial_steps
from evotrain.trial.trace import Trace

ANCHOR = "c01-anchor"
STDERR_LINES = 10


class StepResult(BaseModel):
    step: str  # `train`, `evaluate/step-000050`, `predict/step-000100`
    status: str
    wall_s: float


class CheckResult(BaseModel):
    substrate: Path
    folder: Path  # where the trial ran: the sandbox, work files and logs stay there to read
    metric: str
    steps: list[StepResult] = []
    checkpoints: list[CheckpointEval] = []
    selected: Selection | None = None
    predictions: int | None = None  # items in the validated predictions file
    predictions_file: Path | None = None
    problems: list[str] = []  # each on one line: file, field and fix
    stderr_tail: list[str] = []  # the end of the failed step's stderr

    @property
    def ok(self) -> bool:
        return not self.problems


def check_substrate(substrate: Path, folder: Path, *, seed: int = 0, executor: Executor | None = None) -> CheckResult:
    """Run the substrate's anchor trial in `folder` (new or empty) and validate what each step wrote."""
    spec = load_spec(substrate)
    folder = folder.resolve()
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError("the check folder is not empty", path=folder, fix="pass a new --dir, or remove it")
    snapshot = folder / "substrate"
    snapshot_substrate(substrate, snapshot)
    candidate = CandidatePaths(root=folder / ANCHOR, round=1, name=ANCHOR)
    fork_sandbox(snapshot, spec, candidate.sandbox, None)
    trace = Trace(candidate.trace)
    executor = executor or LocalExecutor()
    outcome = run_trial_steps(
        candidate=candidate,
        campaign_root=folder,
        spec=spec,
        objective=initial_policy(spec).objective,
        seed=seed,
        executor=executor,
        trace=trace,
    )
    result = CheckResult(
        substrate=substrate.resolve(),
        folder=folder,
        metric=spec.metric.name,
        checkpoints=outcome.checkpoints,
        selected=outcome.selected,
    )
    if outcome.failure is not None:
        result.problems.append(outcome.failure.one_line())
        result.stderr_tail = _stderr_tail(candidate, outcome.failure)
    result.problems += _other_bad_reports(candidate, spec.metric, outcome.failure)
    if outcome.selected is not None and spec.commands.predict is not None:
        _check_predict(result, candidate, folder, spec, outcome.selected.checkpoint, seed, executor, trace)
    elif spec.commands.predict is None:
        result.problems.append(
            f"{substrate / 'evotrain.toml'}: [commands] declares no `predict`, so no external target can score a "
            "candidate — fix: add [commands].predict (docs/substrate-format.md)"
        )
    result.steps = _steps_from_trace(trace, candidate.candidate_id)
    return result


def _check_predict(
    result: CheckResult,
    candidate: CandidatePaths,
    folder: Path,
    spec: SubstrateSpec,
    checkpoint: str,
    seed: int,
    executor: Executor,
    trace: Trace,
) -> None:
    predicted = run_predict(
        candidate=candidate,
        campaign_root=folder,
        spec=spec,
        checkpoint=checkpoint,
        seed=seed,
        executor=executor,
        trace=trace,
    )
    if isinstance(predicted, Failure):
        result.problems.append(predicted.one_line())
        return
    result.predictions_file = predicted
    result.predictions = len(Predictions.model_validate_json(predicted.read_bytes()).predictions)
    if result.predictions == 0:
        result.problems.append(f"{predicted}: field `predictions` is empty — fix: predict every external input")


def _other_bad_reports(candidate: CandidatePaths, metric: Metric, failure: Failure | None) -> list[str]:
    """The harness stops at the first bad report; a check validates every report `evaluate` wrote."""
    problems = []
    for name in list_checkpoints(candidate):
        report = candidate.eval_dir / f"{name}.json"
        if not report.exists():
            continue
        try:
            load_eval_report(report, metric)
        except BadOutputError as err:
            line = Failure(failure_class="bad_output", step=f"evaluate/{name}", message=err.render()).one_line()
            if failure is None or err.render() not in failure.message:
                problems.append(line)
    return problems


def _stderr_tail(candidate: CandidatePaths, failure: Failure, lines: int = STDERR_LINES) -> list[str]:
    log = candidate.logs / f"{(failure.step or '').replace('/', '-')}.err"
    return log.read_text(errors="replace").splitlines()[-lines:] if log.is_file() else []


def _steps_from_trace(trace: Trace, candidate_id: str) -> list[StepResult]:
    steps = []
    for event in trace.events():
        if event.kind == "step_finished" and event.key:
            label = event.key.removeprefix(f"{candidate_id}/")
            steps.append(
                StepResult(
                    step=label,
                    status=str(event.data.get("status", "?")),
                    wall_s=float(event.data.get("wall_s", 0.0)),
                )
            )
    return steps
