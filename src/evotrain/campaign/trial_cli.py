"""`evotrain trial train|evaluate|logs`: how an agent worker tries its recipe, through the harness only.

Run inside an agent's sandbox (EVOTRAIN_AGENT_CONTEXT names `<candidate>/agent.json`). The substrate's own
prepare/train/evaluate commands run through the same `run_step` the harness uses, into the scratch folder
`<candidate>/agent-work/`, never the official `work/`; the scores printed are the ones the harness read from the
evaluation reports. Each `train` is a new attempt (`a01`, `a02`, …) recorded in `agent-work/trace.jsonl`, so an
agent can debug and retry; the official trial, run after the worker returns, is what the manifest records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evotrain.campaign.store import CampaignStore
from evotrain.errors import EvotrainError
from evotrain.executors.local import LocalExecutor
from evotrain.fileio import atomic_write_text
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import CheckpointEval, Failure
from evotrain.substrate.spec import Step, SubstrateSpec, checkpoint_folders, load_spec
from evotrain.trial.evaluation import BadOutputError, checkpoint_eval, load_eval_report, select_checkpoint
from evotrain.trial.harness import missing_reports, non_finite_training_values, read_training_summary
from evotrain.trial.steps import build_request, failure_class, run_step
from evotrain.trial.trace import Trace
from evotrain.workers.context import AgentContext, load_context

trial_app = typer.Typer(
    name="trial",
    help="Inside an agent worker's sandbox: run the substrate's steps through the harness (scratch trials).",
    no_args_is_help=True,
)

LOG_TAIL_LINES = 40


class AgentTrial:
    """The scratch trial folders of one agent: agent-work/{work,logs,trace.jsonl,attempt}."""

    def __init__(self, context: AgentContext) -> None:
        self.context = context
        self.root = context.agent_work
        self.work = self.root / "work"
        self.checkpoints = self.work / "checkpoints"
        self.logs = self.root / "logs"
        self.trace = Trace(self.root / "trace.jsonl")
        self.spec: SubstrateSpec = load_spec(context.substrate)
        self.executor = LocalExecutor()

    def attempt(self, *, new: bool) -> str:
        marker = self.root / "attempt"
        number = int(marker.read_text()) if marker.exists() else 0
        if new:
            number += 1
            atomic_write_text(marker, str(number))
        return f"a{number:02d}"

    def run(self, step: Step, output: Path, attempt: str, *, checkpoint: str | None = None) -> Failure | None:
        label = step if checkpoint is None else f"{step}/{checkpoint}"
        request = build_request(
            key=f"{self.context.trial_prefix}/{attempt}/{label}",
            step=step,
            spec=self.spec,
            sandbox=self.context.sandbox,
            work=self.work,
            seed=self.context.seed,
            output=output,
            logs=self.logs / f"{attempt}-{label.replace('/', '-')}",
            checkpoint=self.checkpoints / checkpoint if checkpoint else None,
        )
        fresh = [output, self.checkpoints] if step == "train" else [output]
        required = output if step == "evaluate" else None
        outcome = run_step(self.executor, request, self.trace, required_output=required, fresh=fresh)
        cls = failure_class(outcome)
        if cls is None:
            return None
        return Failure(failure_class=cls, step=label, message=f"{outcome.message} (stderr: {request.stderr})")

    def checkpoint_names(self) -> list[str]:
        return [p.name for p in checkpoint_folders(self.checkpoints)]


def _say_failure(failure: Failure) -> typer.Exit:
    typer.echo(f"FAILED {failure.step}: {failure.failure_class}: {failure.message}")
    return typer.Exit(code=1)


def _open() -> AgentTrial:
    try:
        return AgentTrial(load_context())
    except EvotrainError as exc:
        typer.echo(f"error: {exc.render()}", err=True)
        raise typer.Exit(code=2) from None


@trial_app.command()
def train() -> None:
    """Run prepare (if declared) and train on the sandbox's recipe; print the training summary and checkpoints."""
    trial = _open()
    attempt = trial.attempt(new=True)
    for folder in (trial.work, trial.checkpoints, trial.logs):
        folder.mkdir(parents=True, exist_ok=True)
    if trial.spec.commands.prepare is not None:
        failure = trial.run("prepare", trial.work / "prepare.json", attempt)
        if failure:
            raise _say_failure(failure)
    summary_path = trial.work / "train_summary.json"
    failure = trial.run("train", summary_path, attempt)
    if failure:
        raise _say_failure(failure)
    summary = read_training_summary(summary_path)
    if isinstance(summary, Failure):
        raise _say_failure(summary)
    names = trial.checkpoint_names()
    typer.echo(f"attempt {attempt}: train finished")
    typer.echo(f"training summary: {json.dumps(summary, sort_keys=True)}")
    for warning in non_finite_training_values(summary_path):
        typer.echo(f"warning: training summary {warning} is not a finite number (left out)")
    typer.echo(f"checkpoints: {', '.join(names) if names else '(none)'}")
    if not names:
        raise typer.Exit(code=1)


@trial_app.command()
def evaluate() -> None:
    """Evaluate every checkpoint of the last `train` on the dev split; print per-domain scores and the selection."""
    trial = _open()
    attempt = trial.attempt(new=False)
    names = trial.checkpoint_names()
    if not names:
        typer.echo("no checkpoints: run `evotrain trial train` first")
        raise typer.Exit(code=1)
    policy = CampaignStore(CampaignPaths(trial.context.campaign_root)).read_policy(trial.context.round)
    metric = trial.spec.metric
    evals: list[CheckpointEval] = []
    eval_dir = trial.work / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    all_at_once = trial.spec.commands.evaluate_all is not None
    if all_at_once:
        failure = trial.run("evaluate_all", eval_dir, attempt) or missing_reports(eval_dir, names)
        if failure:
            raise _say_failure(failure)
    for name in names:
        report_path = eval_dir / f"{name}.json"
        if not all_at_once:
            failure = trial.run("evaluate", report_path, attempt, checkpoint=name)
            if failure:
                raise _say_failure(failure)
        try:
            report = load_eval_report(report_path, metric)
        except BadOutputError as err:
            step = "evaluate_all" if all_at_once else f"evaluate/{name}"
            raise _say_failure(Failure(failure_class="bad_output", step=step, message=err.render())) from None
        evals.append(checkpoint_eval(name, report, str(report_path), policy.objective, metric))
    for ev in evals:
        domains = " ".join(f"{d}={s.score:.4f}" for d, s in ev.domains.items())
        typer.echo(f"{ev.checkpoint}: {metric.name} {ev.overall:.4f}  objective {ev.objective:.4f}  {domains}")
    selected = select_checkpoint(evals, policy.objective, metric)
    typer.echo(f"selected {selected.checkpoint}: objective {selected.objective:.4f} ({selected.criterion})")


@trial_app.command()
def logs(
    lines: Annotated[int, typer.Option(help="lines from the end of each log")] = LOG_TAIL_LINES,
) -> None:
    """Print the end of every log of the last attempt (stdout and stderr of each step)."""
    trial = _open()
    attempt = trial.attempt(new=False)
    found = sorted(trial.logs.glob(f"{attempt}-*")) if trial.logs.is_dir() else []
    if not found:
        typer.echo("no logs yet: run `evotrain trial train` first")
        return
    for path in found:
        text = path.read_text(errors="replace").splitlines()[-lines:]
        typer.echo(f"==> {path.name} <==")
        typer.echo("\n".join(text))
