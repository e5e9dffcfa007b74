"""One contract, every executor: the same tests run against the local executor and a real SLURM.

As optuna runs one storage test suite against every backend: what the harness relies on (exit codes, logs, env,
failure classes, cancel, re-attach after an orchestrator restart, GPU assignment) must hold for each.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from evotrain.executors.protocol import Executor, JobRef, StepOutcome, StepRequest
from evotrain.substrate.spec import Resources

from .conftest import make_executor

WAIT_S = 90.0


def request(tmp_path: Path, command: str, name: str = "job", **resources: float) -> StepRequest:
    return StepRequest(
        key=f"test/{name}",
        step="train",
        command=command,
        cwd=tmp_path,
        env={"EVOTRAIN_TEST": "yes"},
        resources=Resources(**{"memory_gb": 0.25, **resources}),
        stdout=tmp_path / "logs" / f"{name}.out",
        stderr=tmp_path / "logs" / f"{name}.err",
    )


def wait(executor: Executor, ref: JobRef, limit_s: float = WAIT_S) -> StepOutcome:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        outcome = executor.poll(ref)
        if outcome is not None:
            return outcome
        time.sleep(0.05)
    raise AssertionError(f"{ref.key} did not end within {limit_s} s")


def wait_for_file(path: Path, limit_s: float = WAIT_S) -> str:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {limit_s} s")


def alive(pid: int) -> bool:
    stat = Path("/proc") / str(pid) / "stat"
    if not stat.exists():
        return False
    text = stat.read_text()
    return text[text.rindex(")") + 2] != "Z"


def test_runs_the_command_with_env_cwd_and_logs(executor: Executor, tmp_path: Path) -> None:
    command = 'echo "$EVOTRAIN_TEST in $(pwd) gpus=[$CUDA_VISIBLE_DEVICES]"; echo oops >&2'
    ref = executor.submit(request(tmp_path, command))
    assert ref.executor == executor.name and ref.key == "test/job"
    outcome = wait(executor, ref)
    assert outcome.status == "succeeded" and outcome.ok and outcome.exit_code == 0
    out = (tmp_path / "logs/job.out").read_text().splitlines()
    assert out[0].startswith("=== evotrain test/job attempt")
    assert f"yes in {tmp_path} gpus=[]" in out
    assert "oops" in (tmp_path / "logs/job.err").read_text().splitlines()
    assert outcome.gpus == [] and outcome.gpu_s == 0.0


def test_a_failure_keeps_its_exit_code_and_a_retry_appends_to_the_logs(executor: Executor, tmp_path: Path) -> None:
    for _ in range(2):
        outcome = wait(executor, executor.submit(request(tmp_path, "echo attempt; exit 3")))
        assert outcome.status == "failed" and outcome.exit_code == 3
        assert "exited with code 3" in outcome.message
    assert (tmp_path / "logs/job.out").read_text().count("attempt\n") == 2


def test_time_and_cpu_are_measured(executor: Executor, tmp_path: Path) -> None:
    busy = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 0.3"
    outcome = wait(executor, executor.submit(request(tmp_path, busy)))
    assert outcome.ok and outcome.cpu_s > 0.05 and outcome.wall_s >= 0.3


def test_cancel_stops_the_step_and_is_classified(executor: Executor, tmp_path: Path) -> None:
    ref = executor.submit(request(tmp_path, "echo $$ > pid; sleep 300"))
    pid = int(wait_for_file(tmp_path / "pid"))
    executor.cancel(ref)
    outcome = wait(executor, ref, limit_s=5)
    assert outcome.status == "cancelled"
    assert not alive(pid)


def test_two_one_gpu_steps_run_at_once_on_different_gpus(executor: Executor, tmp_path: Path) -> None:
    command = 'echo "$CUDA_VISIBLE_DEVICES" > {0}.gpu; date +%s.%N > {0}.start; sleep 2; date +%s.%N > {0}.end'
    refs = [executor.submit(request(tmp_path, command.format(n), n, gpus=1)) for n in ("a", "b")]
    outcomes = [wait(executor, ref) for ref in refs]
    assert all(o.ok for o in outcomes)
    seen = sorted((tmp_path / f"{n}.gpu").read_text().strip() for n in ("a", "b"))
    assert seen == ["0", "1"], seen
    assert sorted(o.gpus[0] for o in outcomes) == [0, 1]
    assert all(o.gpu_s == pytest.approx(o.wall_s) for o in outcomes)
    spans = [(float((tmp_path / f"{n}.start").read_text()), float((tmp_path / f"{n}.end").read_text())) for n in "ab"]
    first, second = sorted(spans)
    assert second[0] < first[1], f"the two steps did not overlap: {spans}"


def test_a_new_orchestrator_reattaches_or_leaves_nothing_running(executor_kind: str, tmp_path: Path) -> None:
    """A job recorded by an orchestrator that died: a cluster job is re-attached and finishes; a local one is
    killed (nobody would reap it) and the step runs again."""
    first = make_executor(executor_kind)
    ref = first.submit(request(tmp_path, "echo $$ > pid; sleep 2; echo done > finished"))
    pid = int(wait_for_file(tmp_path / "pid"))
    second = make_executor(executor_kind)  # the resumed orchestrator: knows the job only from the trace
    recovered = second.recover(JobRef.model_validate(ref.model_dump(mode="json")))
    if executor_kind == "slurm":
        assert recovered is not None and recovered.job_id == ref.job_id
        outcome = wait(second, recovered)
        assert outcome.ok and (tmp_path / "finished").read_text() == "done\n"
    else:
        assert recovered is None
        assert not alive(pid) and not (tmp_path / "finished").exists()
    assert second.recover(recovered or ref) in (None, recovered)
    for made in (first, second):
        made.close()  # type: ignore[attr-defined]


def test_concurrent_submitters_each_get_their_outcome(executor: Executor, tmp_path: Path) -> None:
    """The campaign polls from one thread per candidate."""
    results: dict[str, StepOutcome] = {}

    def run(name: str, code: int) -> None:
        results[name] = wait(executor, executor.submit(request(tmp_path, f"sleep 0.5; exit {code}", name)))

    threads = [threading.Thread(target=run, args=(f"t{i}", i)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {name: o.exit_code for name, o in results.items()} == {"t0": 0, "t1": 1, "t2": 2}


@pytest.mark.slow
def test_a_step_past_its_time_limit_is_classified_timeout(executor_kind: str, tmp_path: Path) -> None:
    # SLURM counts time limits in whole minutes and checks them about every 30 s: this takes 60-100 s there.
    executor = make_executor(executor_kind)
    ref = executor.submit(request(tmp_path, "echo $$ > pid; sleep 600", timeout_s=0.5))
    pid = int(wait_for_file(tmp_path / "pid"))
    outcome = wait(executor, ref, limit_s=180)
    assert outcome.status == "timeout", outcome
    assert not alive(pid)
