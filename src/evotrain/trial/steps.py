"""Run one substrate step (prepare, train, evaluate, predict) through an executor, resumably, via the trace."""

from __future__ import annotations

import re
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from evotrain.errors import ConfigError
from evotrain.executors.protocol import Executor, JobRef, StepOutcome, StepRequest
from evotrain.records.manifest import FailureClass
from evotrain.substrate.spec import PLACEHOLDERS, SPEC_FILENAME, Step, SubstrateSpec
from evotrain.trial.trace import Trace

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_]+)\}")

# StepOutcome.status -> the manifest's failure class. `run_step` marks a step that exited 0 without writing
# its required output as status "failed" with exit code 0 (see `missing_output_outcome`).
_FAILURE_CLASS: dict[str, FailureClass] = {
    "failed": "step_failed",
    "timeout": "timeout",
    "killed": "killed",
    "oom": "oom",
    "preempted": "preempted",
    "node_failure": "node_failure",
    "cancelled": "cancelled",
}


def render_command(template: str, values: dict[str, str], *, step: str | None = None) -> str:
    """Fill `{placeholder}`s with shell-quoted values; an unknown or valueless placeholder is a ConfigError."""
    where = f"[commands].{step}" if step else "a command"

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            raise ConfigError(
                f"{where} = {template!r} uses unknown placeholder {{{name}}}",
                path=SPEC_FILENAME,
                fix=f"use one of {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}",
            )
        if name not in values:
            raise ConfigError(
                f"{where} = {template!r} uses {{{name}}}, which has no value in this step",
                path=SPEC_FILENAME,
                fix="see docs/substrate-format.md for the placeholders each step gets ({checkpoint} is only "
                "for evaluate and predict)",
            )
        return shlex.quote(values[name])

    return _PLACEHOLDER_RE.sub(fill, template)


def step_values(
    *, sandbox: Path, work: Path, seed: int, output: Path, checkpoint: Path | None = None
) -> dict[str, str]:
    """The placeholder values of one step (docs/substrate-format.md, "Placeholders")."""
    values = {
        "python": sys.executable,
        "sandbox": str(sandbox),
        "work": str(work),
        "checkpoints": str(work / "checkpoints"),
        "seed": str(seed),
        "output": str(output),
    }
    if checkpoint is not None:
        values["checkpoint"] = str(checkpoint)
    return values


def step_env(values: dict[str, str]) -> dict[str, str]:
    """The same values in the environment, as EVOTRAIN_SANDBOX/WORK/SEED/OUTPUT/CHECKPOINT."""
    names = {"sandbox": "SANDBOX", "work": "WORK", "seed": "SEED", "output": "OUTPUT", "checkpoint": "CHECKPOINT"}
    return {f"EVOTRAIN_{env}": values[name] for name, env in names.items() if name in values}


def build_request(
    *,
    key: str,
    step: Step,
    spec: SubstrateSpec,
    sandbox: Path,
    work: Path,
    seed: int,
    output: Path,
    logs: Path,
    checkpoint: Path | None = None,
) -> StepRequest:
    """A StepRequest for `step` of `spec`: command rendered, env set, logs at `<logs>.out` / `<logs>.err`."""
    template = spec.commands.for_step(step)
    if template is None:
        raise ConfigError(
            f"the substrate declares no `{step}` command", path=SPEC_FILENAME, fix=f"add [commands].{step}"
        )
    values = step_values(sandbox=sandbox, work=work, seed=seed, output=output, checkpoint=checkpoint)
    return StepRequest(
        key=key,
        step=step,
        command=render_command(template, values, step=step),
        cwd=sandbox,
        env=step_env(values),
        resources=spec.resources.for_step(step),
        stdout=logs.with_name(logs.name + ".out"),
        stderr=logs.with_name(logs.name + ".err"),
    )


def missing_output_outcome(outcome: StepOutcome, output: Path) -> StepOutcome:
    return outcome.model_copy(
        update={"status": "failed", "message": f"exited 0 without writing its required output {output}"}
    )


def failure_class(outcome: StepOutcome) -> FailureClass | None:
    """The manifest's failure class for a step outcome; None when it succeeded."""
    if outcome.ok:
        return None
    if outcome.status == "failed" and outcome.exit_code == 0:
        return "missing_output"
    return _FAILURE_CLASS[outcome.status]


def run_step(
    executor: Executor,
    request: StepRequest,
    trace: Trace,
    *,
    poll_interval: float = 0.2,
    required_output: Path | None = None,
    fresh: Sequence[Path] = (),
) -> StepOutcome:
    """Run a step to its end, once: a step the trace records as finished is not run again.

    `fresh` lists the step's outputs (files, or folders whose contents go): they are cleared right before a
    (re)submission, so a step restarted after a crash never meets the half-written outputs of its last attempt.

    A recorded success whose required output has since vanished is run again. A step started by an earlier
    orchestrator and never finished is re-attached when the executor can (a cluster job), else its leftovers
    are killed by `executor.recover` and it is submitted again.
    """
    recorded = trace.finished(request.key)
    if recorded is not None:
        outcome = StepOutcome.model_validate(recorded)
        if not outcome.ok or required_output is None or required_output.exists():
            return outcome
    ref: JobRef | None = None
    pending = trace.pending(request.key)
    if pending is not None:
        ref = executor.recover(pending)
    if ref is None:
        clear_outputs(fresh)
        ref = executor.submit(request)
        trace.append("step_started", request.key, **ref.model_dump(mode="json"))
    outcome = _wait(executor, ref, poll_interval)
    if outcome.ok and required_output is not None and not required_output.exists():
        outcome = missing_output_outcome(outcome, required_output)
    trace.append("step_finished", request.key, **outcome.model_dump(mode="json"))
    return outcome


def clear_outputs(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            path.unlink(missing_ok=True)


def _wait(executor: Executor, ref: JobRef, poll_interval: float) -> StepOutcome:
    # Polls fast at first, so a step of a fraction of a second does not cost a whole interval.
    delay = min(0.01, poll_interval)
    while True:
        outcome = executor.poll(ref)
        if outcome is not None:
            return outcome
        time.sleep(delay)
        delay = min(delay * 2, poll_interval)
