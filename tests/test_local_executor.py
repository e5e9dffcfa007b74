"""The local executor runs real process groups: slots, GPU assignment, timeouts, orphan recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from evotrain.errors import ConfigError
from evotrain.executors.local import LocalExecutor, group_members, process_start_ticks
from evotrain.executors.protocol import JobRef, StepOutcome, StepRequest
from evotrain.substrate.spec import Resources


def request(tmp_path: Path, command: str, name: str = "job", **resources: float) -> StepRequest:
    return StepRequest(
        key=f"test/{name}",
        step="train",
        command=command,
        cwd=tmp_path,
        env={"EVOTRAIN_TEST": "yes"},
        resources=Resources(**resources),
        stdout=tmp_path / "logs" / f"{name}.out",
        stderr=tmp_path / "logs" / f"{name}.err",
    )


def wait(executor: LocalExecutor, ref: JobRef, limit_s: float = 20.0) -> StepOutcome:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        outcome = executor.poll(ref)
        if outcome is not None:
            return outcome
        time.sleep(0.02)
    raise AssertionError(f"{ref.key} did not end within {limit_s} s")


def alive(pid: int) -> bool:
    fields = Path("/proc") / str(pid) / "stat"
    if not fields.exists():
        return False
    text = fields.read_text()
    return text[text.rindex(")") + 2] != "Z"


def test_runs_command_with_env_cwd_and_logs(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[])
    ref = executor.submit(
        request(tmp_path, 'echo "$EVOTRAIN_TEST in $(pwd) gpus=[$CUDA_VISIBLE_DEVICES]"; echo oops >&2')
    )
    outcome = wait(executor, ref)
    assert outcome.status == "succeeded" and outcome.exit_code == 0
    out = (tmp_path / "logs/job.out").read_text().splitlines()
    assert out[0].startswith("=== evotrain test/job attempt")
    assert out[1] == f"yes in {tmp_path} gpus=[]"
    assert (tmp_path / "logs/job.err").read_text().splitlines()[1] == "oops"
    assert ref.data["pgid"] == ref.data["pid"]


def test_retry_appends_to_logs_and_failure_is_classified(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[])
    for _ in range(2):
        outcome = wait(executor, executor.submit(request(tmp_path, "echo attempt; exit 3")))
        assert outcome.status == "failed" and outcome.exit_code == 3
    assert (tmp_path / "logs/job.out").read_text().count("attempt\n") == 2


def test_cpu_time_is_measured(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[])
    outcome = wait(executor, executor.submit(request(tmp_path, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")))
    assert outcome.ok and outcome.cpu_s > 0.05 and outcome.wall_s >= outcome.cpu_s * 0.5


def test_one_cpu_runs_two_jobs_one_after_another(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[])
    spans: dict[str, tuple[float, float]] = {}

    def run(name: str) -> None:
        ref = executor.submit(
            request(tmp_path, f"date +%s.%N > {name}.start; sleep 0.3; date +%s.%N > {name}.end", name)
        )
        assert wait(executor, ref).ok

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("a", "b"):
        spans[name] = (float((tmp_path / f"{name}.start").read_text()), float((tmp_path / f"{name}.end").read_text()))
    first, second = sorted(spans.values())
    assert second[0] >= first[1], f"jobs overlapped: {spans}"


def test_two_cpus_run_two_jobs_at_once(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=2, gpus=[])
    command = "date +%s.%N > {0}.start; sleep 0.5; date +%s.%N > {0}.end"
    refs = [executor.submit(request(tmp_path, command.format(n), n)) for n in ("a", "b")]
    assert all(wait(executor, ref).ok for ref in refs)
    spans = [(float((tmp_path / f"{n}.start").read_text()), float((tmp_path / f"{n}.end").read_text())) for n in "ab"]
    first, second = sorted(spans)
    assert second[0] < first[1], f"jobs did not overlap: {spans}"


def test_gpu_slots_are_assigned_through_cuda_visible_devices(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=4, gpus=[0, 1])
    refs = [
        executor.submit(request(tmp_path, f'echo "$CUDA_VISIBLE_DEVICES" > {n}.gpu; sleep 0.2', n, gpus=1))
        for n in ("a", "b")
    ]
    outcomes = [wait(executor, ref) for ref in refs]
    seen = sorted((tmp_path / f"{n}.gpu").read_text().strip() for n in ("a", "b"))
    assert seen == ["0", "1"]
    assert sorted(o.gpus[0] for o in outcomes) == [0, 1]
    assert all(o.gpu_s == pytest.approx(o.wall_s) for o in outcomes)
    both = wait(executor, executor.submit(request(tmp_path, 'echo "$CUDA_VISIBLE_DEVICES" > both.gpu', "both", gpus=2)))
    assert both.ok and (tmp_path / "both.gpu").read_text().strip() == "0,1"


def test_a_step_bigger_than_the_machine_is_refused(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=2, gpus=[0])
    with pytest.raises(ConfigError, match="gpus=2"):
        executor.submit(request(tmp_path, "true", gpus=2))
    with pytest.raises(ConfigError, match="cpus=3"):
        executor.submit(request(tmp_path, "true", cpus=3))


def test_gpus_default_to_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert LocalExecutor(cpus=1).gpus == [2, 5]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert LocalExecutor(cpus=1).gpus == []


def test_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[], term_grace_s=0.5)
    # The grandchild ignores SIGTERM, so only the SIGKILL after the grace period stops it.
    command = "sh -c 'trap \"\" TERM; sleep 30 & echo $! > grandchild.pid; wait' ; sleep 30"
    ref = executor.submit(request(tmp_path, command, timeout_s=0.5))
    outcome = wait(executor, ref)
    assert outcome.status == "timeout" and "timeout_s=0.5" in outcome.message
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert not alive(grandchild)
    assert group_members(ref.data["pgid"]) == []


def test_cancel_kills_the_group_and_frees_the_slot(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[])
    ref = executor.submit(request(tmp_path, "sleep 30 & sleep 30"))
    executor.cancel(ref)
    outcome = executor.poll(ref)
    assert outcome is not None and outcome.status == "cancelled"
    assert group_members(ref.data["pgid"]) == []
    assert wait(executor, executor.submit(request(tmp_path, "true", "next"))).ok  # the slot is free again


def test_killed_by_signal_is_reported(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[])
    outcome = wait(executor, executor.submit(request(tmp_path, "exec sh -c 'kill -KILL $$'")))
    assert outcome.status == "killed" and "OOM" in outcome.message


def test_a_group_over_its_memory_gb_is_stopped_as_oom(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=2, gpus=[], term_grace_s=0.5)
    # a child holds ~200 MB resident (bytes written, so the pages are real) and then sleeps
    hog = "python3 -c 'import time; b = bytearray(200 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(30)'"
    ref = executor.submit(request(tmp_path, f"{hog}; sleep 30", "hog", memory_gb=0.1))
    outcome = wait(executor, ref)
    assert outcome.status == "oom" and "memory_gb=0.1" in outcome.message and "[resources.train]" in outcome.message
    assert group_members(ref.data["pgid"]) == []
    # the same step with room to spare runs to its end
    fits = executor.submit(request(tmp_path, hog.replace("time.sleep(30)", "None"), "fits", memory_gb=1.0))
    assert wait(executor, fits).ok


@pytest.mark.parametrize(
    ("timeout_s", "ignore_term"),
    [
        (0.5, False),  # the timeout falls due before the next memory check
        (1.2, True),  # stopped for memory at the 1 s check, still dying (it ignores SIGTERM) when the timeout falls due
    ],
)
def test_a_group_over_its_memory_gb_near_its_timeout_is_oom(
    tmp_path: Path, timeout_s: float, ignore_term: bool
) -> None:
    executor = LocalExecutor(cpus=2, gpus=[], term_grace_s=0.5)
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
    hog = (
        f'exec python3 -c \'{ignore}import time; b = bytearray(200 * 2**20); b[::4096] = b"x" * len(b[::4096]); '
        "time.sleep(30)'"
    )
    ref = executor.submit(request(tmp_path, hog, "hog", memory_gb=0.1, timeout_s=timeout_s))
    outcome = wait(executor, ref)
    assert outcome.status == "oom", outcome.message
    assert "memory_gb=0.1" in outcome.message


def test_recover_kills_an_orphan_group(tmp_path: Path) -> None:
    # An "earlier orchestrator" started this group; this executor never saw it.
    orphan = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & sleep 30"], start_new_session=True)
    time.sleep(0.1)
    ref = JobRef(
        executor="local",
        key="test/orphan",
        job_id="999-1",
        data={"pid": orphan.pid, "pgid": orphan.pid, "start_ticks": process_start_ticks(orphan.pid)},
    )
    assert len(group_members(orphan.pid)) >= 2  # the shell (unless it exec'd) and both sleeps
    assert LocalExecutor(cpus=1, gpus=[]).recover(ref) is None
    assert orphan.wait(timeout=5) == -signal.SIGKILL
    assert group_members(orphan.pid) == []


def test_recover_leaves_a_reused_pid_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        ticks = process_start_ticks(other.pid)
        assert ticks is not None
        ref = JobRef(
            executor="local",
            key="k",
            job_id="999-2",
            data={"pid": other.pid, "pgid": other.pid, "start_ticks": ticks - 1},
        )
        assert LocalExecutor(cpus=1, gpus=[]).recover(ref) is None
        assert other.poll() is None, "a process whose start time does not match was killed"
    finally:
        os.killpg(other.pid, signal.SIGKILL)
        other.wait()


def test_recover_reattaches_its_own_job(tmp_path: Path) -> None:
    executor = LocalExecutor(cpus=1, gpus=[])
    ref = executor.submit(request(tmp_path, "sleep 0.1"))
    assert executor.recover(ref) == ref
    assert wait(executor, ref).ok


def test_a_step_does_not_inherit_the_orchestrators_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOTRAIN_LEADERBOARD_TOKEN", "s3cret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("EVOTRAIN_PLAIN", "visible")
    executor = LocalExecutor(cpus=1, gpus=[])
    ref = executor.submit(request(tmp_path, "env"))
    assert wait(executor, ref).status == "succeeded"
    env = (tmp_path / "logs/job.out").read_text()
    assert "EVOTRAIN_PLAIN=visible" in env
    assert "s3cret" not in env and "sk-x" not in env
