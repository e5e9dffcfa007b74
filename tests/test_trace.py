"""The trace: durable appends, torn-line tolerance, and the queries resumption relies on; run_step resumption."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from evotrain.errors import ConfigError
from evotrain.executors.local import LocalExecutor
from evotrain.executors.protocol import JobRef, StepOutcome, StepRequest
from evotrain.substrate.spec import Resources, SubstrateSpec
from evotrain.trial.steps import build_request, failure_class, render_command, run_step
from evotrain.trial.trace import Trace


def ref(key: str, job: str = "1") -> JobRef:
    return JobRef(executor="local", key=key, job_id=job, data={"pid": 123})


def test_append_and_read_back(tmp_path: Path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    trace.append("forked", "r0001/c01", seed=7)
    trace.append("step_started", "r0001/c01/train", **ref("r0001/c01/train").model_dump(mode="json"))
    events = trace.events()
    assert [e.seq for e in events] == [1, 2]
    assert events[0].kind == "forked" and events[0].data == {"seed": 7}
    assert trace.has("forked") and not trace.has("manifest_written")
    assert trace.pending("r0001/c01/train") == ref("r0001/c01/train")
    assert trace.finished("r0001/c01/train") is None
    assert trace.started_unfinished() == [ref("r0001/c01/train")]
    trace.append("step_finished", "r0001/c01/train", **StepOutcome(status="succeeded", wall_s=1.5).model_dump())
    assert trace.finished("r0001/c01/train")["wall_s"] == 1.5  # type: ignore[index]
    assert trace.pending("r0001/c01/train") is None and trace.started_unfinished() == []
    # A restart of the step (e.g. its output vanished) makes it pending again.
    trace.append("step_started", "r0001/c01/train", **ref("r0001/c01/train", "2").model_dump(mode="json"))
    assert trace.finished("r0001/c01/train") is None
    assert trace.started_unfinished() == [ref("r0001/c01/train", "2")]
    last = trace.last("step_started")
    assert last is not None and last.seq == 4


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        Trace(tmp_path / "t.jsonl").append("step_done", "x")  # type: ignore[arg-type]


def test_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    trace = Trace(path)
    trace.append("forked", "c")
    with open(path, "a") as fh:
        fh.write('{"seq": 2, "kind": "step_sta')  # a crash mid-append
    assert [e.kind for e in trace.events()] == ["forked"]
    trace.append("violations", "c", violations=[])
    assert [(e.seq, e.kind) for e in trace.events()] == [(1, "forked"), (2, "violations")]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_render_command_quotes_values_and_names_bad_placeholders() -> None:
    values = {"python": "/usr/bin/python3", "output": "/tmp/a b/out.json", "seed": "3"}
    rendered = render_command("{python} x.py --out {output} --seed {seed}", values)
    assert rendered == "/usr/bin/python3 x.py --out '/tmp/a b/out.json' --seed 3"
    with pytest.raises(ConfigError, match=r"uses unknown placeholder \{outptu\}"):
        render_command("run --out {outptu}", values, step="train")
    with pytest.raises(ConfigError, match=r"\[commands\].train = 'run \{checkpoint\}' uses \{checkpoint\}"):
        render_command("run {checkpoint}", values, step="train")


def counting_request(tmp_path: Path, output: Path, *, write_output: bool = True) -> StepRequest:
    script = tmp_path / "step.py"
    script.write_text(
        "import os, pathlib\n"
        "with open('runs.txt', 'a') as fh: fh.write('run\\n')\n"
        + ("pathlib.Path(os.environ['OUT']).write_text('{}')\n" if write_output else "")
    )
    return StepRequest(
        key="r0001/c01-anchor/train",
        step="train",
        command=f"{sys.executable} {script}",
        cwd=tmp_path,
        env={"OUT": str(output)},
        resources=Resources(cpus=1),
        stdout=tmp_path / "logs/train.out",
        stderr=tmp_path / "logs/train.err",
    )


def runs(tmp_path: Path) -> int:
    return (tmp_path / "runs.txt").read_text().count("run")


def test_run_step_does_not_rerun_a_finished_step(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[])
    trace = Trace(tmp_path / "trace.jsonl")
    output = tmp_path / "out.json"
    request = counting_request(tmp_path, output)
    first = run_step(executor, request, trace, required_output=output)
    second = run_step(LocalExecutor(cpus=1, gpus=[]), request, Trace(trace.path), required_output=output)
    assert first.ok and second == first
    assert runs(tmp_path) == 1
    output.unlink()  # a recorded success whose output vanished is run again
    assert run_step(executor, request, trace, required_output=output).ok
    assert runs(tmp_path) == 2 and output.exists()
    assert [e.kind for e in trace.events()] == ["step_started", "step_finished"] * 2


def test_run_step_restarts_a_step_left_unfinished(tmp_path: Path) -> None:
    trace = Trace(tmp_path / "trace.jsonl")
    output = tmp_path / "out.json"
    request = counting_request(tmp_path, output)
    # An earlier orchestrator recorded the start and died; its job (a dead pid) is not re-attachable.
    stale = JobRef(
        executor="local", key=request.key, job_id="1-1", data={"pid": 2**22 + 7, "pgid": 2**22 + 7, "start_ticks": 1}
    )
    trace.append("step_started", request.key, **stale.model_dump(mode="json"))
    outcome = run_step(LocalExecutor(cpus=1, gpus=[]), request, trace, required_output=output)
    assert outcome.ok and runs(tmp_path) == 1
    assert trace.started_unfinished() == []


def test_run_step_missing_output_is_classified(tmp_path: Path) -> None:
    output = tmp_path / "out.json"
    request = counting_request(tmp_path, output, write_output=False)
    outcome = run_step(LocalExecutor(cpus=1, gpus=[]), request, Trace(tmp_path / "t.jsonl"), required_output=output)
    assert failure_class(outcome) == "missing_output" and str(output) in outcome.message


def test_build_request_sets_the_documented_environment(tiny_spec: SubstrateSpec, tmp_path: Path) -> None:
    request = build_request(
        key="k",
        step="evaluate",
        spec=tiny_spec,
        sandbox=tmp_path / "sb",
        work=tmp_path / "w",
        seed=5,
        output=tmp_path / "w/eval/x.json",
        logs=tmp_path / "logs/evaluate-x",
        checkpoint=tmp_path / "w/checkpoints/x",
    )
    assert request.env == {
        "EVOTRAIN_SANDBOX": str(tmp_path / "sb"),
        "EVOTRAIN_WORK": str(tmp_path / "w"),
        "EVOTRAIN_SEED": "5",
        "EVOTRAIN_OUTPUT": str(tmp_path / "w/eval/x.json"),
        "EVOTRAIN_CHECKPOINT": str(tmp_path / "w/checkpoints/x"),
    }
    assert request.command.endswith(
        f"--checkpoint {tmp_path}/w/checkpoints/x --split dev --out {tmp_path}/w/eval/x.json"
    )
    assert request.stdout.name == "evaluate-x.out" and request.resources.timeout_s == 120
