"""SLURM-only behaviour, against a real one-node SLURM with two fake GPUs (scripts/slurm/start.sh).

Failure classes SLURM decides (a cancel from outside, a failed node), configuration errors, a two-round campaign
whose GPU steps share the two GPUs, and kill -9 / SIGTERM of the orchestrator with jobs queued and running.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from evotrain.campaign.config import load_config, save_config
from evotrain.campaign.loop import Campaign
from evotrain.errors import ConfigError
from evotrain.executors.factory import ExecutorSettings, build_executor
from evotrain.executors.slurm import SlurmConfig, SlurmExecutor
from evotrain.executors.slurm_job import JobRecord
from evotrain.fileio import read_jsonl
from evotrain.records.layout import CampaignPaths
from evotrain.trial.trace import Trace

from ..campaign_helpers import EXAMPLES, make_tiny_campaign, manifests
from .conftest import PARTITION, slurm_executor
from .test_contract import request, wait, wait_for_file

pytestmark = pytest.mark.usefixtures("slurm_cluster")
NODE = os.uname().nodename.split(".")[0]


def squeue_names(prefix: str) -> Counter[str]:
    """How many jobs SLURM has seen per job name (finished ones stay listed for MinJobAge = 10 min)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%j"], capture_output=True, text=True, check=True
    ).stdout
    return Counter(line.strip() for line in out.splitlines() if line.strip().startswith(prefix + ":"))


def squeue_jobs(prefix: str) -> list[tuple[str, str]]:
    """(job name, state) of every job SLURM still lists under this prefix."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%j|%T"], capture_output=True, text=True, check=True
    ).stdout
    jobs = [tuple(line.strip().split("|", 1)) for line in out.splitlines() if "|" in line]
    return [(name, state) for name, state in jobs if name.startswith(prefix + ":")]


def squeue_states(prefix: str) -> Counter[str]:
    return Counter(state for _, state in squeue_jobs(prefix))


# --- configuration errors -------------------------------------------------------------------------------


def test_missing_sbatch_is_a_config_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="sbatch") as err:
        SlurmExecutor(SlurmConfig())
    assert "--executor local" in err.value.render()


def test_an_unknown_partition_is_a_config_error_listing_the_real_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="partition 'nosuch' does not exist") as err:
        build_executor("slurm", ExecutorSettings(slurm=SlurmConfig(partition="nosuch")), config_path=tmp_path / "c")
    assert PARTITION in err.value.render() and str(tmp_path / "c") in err.value.render()


def test_a_step_the_cluster_cannot_hold_is_refused_with_sbatch_s_reason(tmp_path: Path) -> None:
    executor = slurm_executor()
    with pytest.raises(ConfigError, match=r"sbatch refused step 'test/job'.*gpus=3"):
        executor.submit(request(tmp_path, "true", gpus=3))


def test_unknown_executor_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown executor 'k8s'"):
        build_executor("k8s")


# --- failure classes SLURM decides ----------------------------------------------------------------------


def test_a_job_cancelled_from_outside_is_classified_cancelled(tmp_path: Path) -> None:
    executor = slurm_executor()
    ref = executor.submit(request(tmp_path, "echo $$ > pid; sleep 300"))
    wait_for_file(tmp_path / "pid")
    subprocess.run(["scancel", ref.job_id], check=True)
    outcome = wait(executor, ref, limit_s=60)
    assert outcome.status == "cancelled" and "from outside evotrain" in outcome.message
    record = JobRecord.model_validate_json(Path(ref.data["record"]).read_bytes())
    assert record.signal == "SIGTERM" and record.ended  # the wrapper saw SLURM's SIGTERM and wrote its end


def test_a_job_on_a_failed_node_is_classified_node_failure(tmp_path: Path) -> None:
    executor = slurm_executor()
    ref = executor.submit(request(tmp_path, "echo $$ > pid; sleep 300"))
    wait_for_file(tmp_path / "pid")
    try:
        subprocess.run(["scontrol", "update", f"nodename={NODE}", "state=down", "reason=evotrain-test"], check=True)
        outcome = wait(executor, ref, limit_s=60)
    finally:
        subprocess.run(["scontrol", "update", f"nodename={NODE}", "state=resume"], capture_output=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-n", NODE, "-o", "%t"], capture_output=True, text=True).stdout
            if state.strip() in ("idle", "mix", "alloc"):
                break
            time.sleep(0.5)
    assert outcome.status == "node_failure", outcome
    assert "node failed" in outcome.message


def test_a_job_preempted_by_a_higher_priority_partition_is_classified_preempted(tmp_path: Path) -> None:
    executor = slurm_executor()  # requeue is off by default: a preempted step ends, classified
    ref = executor.submit(request(tmp_path, "echo $$ > pid; sleep 300", gpus=2))
    wait_for_file(tmp_path / "pid")
    urgent_job = ["sbatch", "--parsable", "--partition=urgent", "--gres=gpu:2", "--mem=100M", "--wrap=sleep 1"]
    urgent = subprocess.run(
        [*urgent_job, f"--output={tmp_path}/u.out"],
        capture_output=True,
        text=True,
        check=True,
    )
    outcome = wait(executor, ref, limit_s=60)
    assert outcome.status == "preempted" and "preempted" in outcome.message, outcome
    assert urgent.stdout.strip()


def test_the_job_writes_its_own_record_next_to_the_logs(tmp_path: Path) -> None:
    executor = slurm_executor()
    ref = executor.submit(request(tmp_path, "sleep 0.2", gpus=1))
    outcome = wait(executor, ref)
    record_file = Path(ref.data["record"])
    assert record_file.parent == tmp_path / "logs" and record_file.name == f"job.slurm-{ref.job_id}.json"
    record = JobRecord.model_validate_json(record_file.read_bytes())
    assert record.job_id == ref.job_id and record.key == "test/job" and record.exit_code == 0
    assert record.ended_at is not None and record.ended_at - record.started_at >= 0.2
    assert record.cuda_visible_devices in ("0", "1") and outcome.gpus == record.gpus
    script = Path(ref.data["script"]).read_text()
    assert "evotrain.executors.slurm_job" in script and ref.data["time_min"] == 60


# --- campaigns through SLURM ----------------------------------------------------------------------------


def gpu_substrate(tmp_path: Path, *, train_sleep_s: float = 0.0) -> None:
    """The tiny substrate with every step on one GPU, two checkpoints a trial, and optionally a slow train."""
    substrate = tmp_path / "tiny"
    shutil.copytree(EXAMPLES / "tiny", substrate, ignore=shutil.ignore_patterns("__pycache__"))
    spec = substrate / "evotrain.toml"
    text = spec.read_text().replace("gpus = 0", "gpus = 1").replace("memory_gb = 1", "memory_gb = 0.5")
    if train_sleep_s:
        text = text.replace('train = "{python} train.py', f'train = "sleep {train_sleep_s:g} && {{python}} train.py')
    spec.write_text(text)
    recipe = substrate / "recipe.toml"
    recipe.write_text(re.sub(r"checkpoint_every = \d+", "checkpoint_every = 100", recipe.read_text()))


def use_slurm(run: Path, prefix: str) -> None:
    config = load_config(run / "campaign.toml")
    slurm = SlurmConfig(partition=PARTITION, poll_s=0.3, job_name_prefix=prefix)
    save_config(
        run / "campaign.toml", config.model_copy(update={"executor": ExecutorSettings(kind="slurm", slurm=slurm)})
    )


def job_records(run: Path) -> list[JobRecord]:
    return [JobRecord.model_validate_json(p.read_bytes()) for p in sorted(run.rglob("*.slurm-*.json"))]


def overlapping(records: list[JobRecord]) -> list[tuple[JobRecord, JobRecord]]:
    pairs = []
    for a, b in itertools.combinations(records, 2):
        assert a.ended_at is not None and b.ended_at is not None
        if a.started_at < b.ended_at and b.started_at < a.ended_at:
            pairs.append((a, b))
    return pairs


def step_starts(run: Path) -> Counter[str]:
    starts: Counter[str] = Counter()
    for round_paths in CampaignPaths(run).rounds():
        for cp in round_paths.candidates():
            starts.update(e.key for e in Trace(cp.trace).events() if e.kind == "step_started" and e.key)
    return starts


@pytest.mark.slow
def test_a_two_round_campaign_runs_through_slurm_on_two_gpus(tmp_path: Path) -> None:
    gpu_substrate(tmp_path)
    run = make_tiny_campaign(tmp_path)
    prefix = f"evotrain-campaign-{os.getpid()}-{time.time_ns() % 10**6}"
    executor = slurm_executor(job_name_prefix=prefix)
    evidence = Campaign(run, executor=executor).run(rounds=2, workers=3, parallel=3)
    assert len(evidence) == 2
    made = list(manifests(run).values())
    assert len(made) == 6 and all(m.ok for m in made), [m.failure for m in made if m.failure]
    records = job_records(run)
    assert records and all(r.exit_code == 0 and r.cuda_visible_devices in ("0", "1") for r in records)
    pairs = overlapping(records)
    assert pairs, "no two jobs ever ran at once"
    assert all(a.cuda_visible_devices != b.cuda_visible_devices for a, b in pairs), "two running jobs shared a GPU"
    names = squeue_names(prefix)
    assert set(names.values()) == {1} and len(names) == len(records) == sum(step_starts(run).values())
    facts = {
        "jobs": len(records),
        "overlapping_pairs": len(pairs),
        "gpus": dict(Counter(r.cuda_visible_devices or "" for r in records)),
    }
    print("slurm campaign:", json.dumps(facts))


def orchestrator(run: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "evotrain", "run", str(run), "--executor", "slurm", *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_states(prefix: str, want: set[str], limit_s: float = 90.0) -> Counter[str]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        states = squeue_states(prefix)
        if want <= set(states):
            return states
        time.sleep(0.2)
    raise AssertionError(f"jobs never reached {want}: {squeue_states(prefix)}")


def wait_for_running_trains(prefix: str, count: int, limit_s: float = 90.0) -> None:
    """Until `count` train jobs run: they sleep for seconds, so they are still running a moment later."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if sum(name.endswith("/train") and state == "RUNNING" for name, state in squeue_jobs(prefix)) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{count} train jobs never ran at once: {squeue_jobs(prefix)}")


ARGS = ["--rounds", "1", "--workers", "3", "--parallel", "3"]


@pytest.mark.slow
def test_kill_9_with_jobs_queued_and_running_then_resume_submits_no_job_twice(tmp_path: Path) -> None:
    gpu_substrate(tmp_path, train_sleep_s=4)
    run = make_tiny_campaign(tmp_path)
    prefix = f"evotrain-kill-{os.getpid()}-{time.time_ns() % 10**6}"
    use_slurm(run, prefix)
    kills = 0
    rng = random.Random(20261123)
    for _ in range(3):  # kill while 3 one-GPU trains compete for 2 GPUs: some run, one waits
        proc = orchestrator(run, *ARGS)
        states = wait_for_states(prefix, {"RUNNING", "PENDING"} if kills == 0 else {"RUNNING"})
        if kills:
            time.sleep(rng.uniform(0.3, 2.0))  # let the resumed orchestrator re-attach, poll, maybe submit
            states = squeue_states(prefix)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        print(f"kill {kills}: jobs {dict(states)}")
    final = orchestrator(run, *ARGS)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()

    names = squeue_names(prefix)
    starts = step_starts(run)
    assert names and set(names.values()) == {1}, f"a step was submitted twice: {names}"
    assert set(starts.values()) == {1} and len(starts) == len(names)
    kinds = Counter(e["kind"] for e in read_jsonl(CampaignPaths(run).round(1).trace))
    assert kinds["round_closed"] == 1
    made = list(manifests(run).values())
    assert len(made) == 3 and all(m.ok for m in made), [m.failure for m in made if m.failure]
    assert subprocess.run([sys.executable, "-m", "evotrain", "audit", str(run)], capture_output=True).returncode == 0
    print(f"resume after {kills} kills: {len(names)} jobs, each submitted once")


@pytest.mark.slow
def test_sigterm_cancels_the_running_jobs_and_resume_reruns_them(tmp_path: Path) -> None:
    gpu_substrate(tmp_path, train_sleep_s=8)
    run = make_tiny_campaign(tmp_path)
    prefix = f"evotrain-term-{os.getpid()}-{time.time_ns() % 10**6}"
    use_slurm(run, prefix)
    proc = orchestrator(run, *ARGS)
    wait_for_running_trains(prefix, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err.decode()
    assert "cancelling the running steps" in err.decode()
    states = squeue_states(prefix)
    assert not {"RUNNING", "PENDING", "COMPLETING"} & set(states), states
    assert states["CANCELLED"] >= 2
    for round_paths in CampaignPaths(run).rounds():
        for cp in round_paths.candidates():
            finished = [e for e in Trace(cp.trace).events() if e.kind == "step_finished"]
            assert all(e.data["status"] != "cancelled" for e in finished)
            assert not cp.manifest.exists()
    # Resume: the steps evotrain cancelled run again (a second job each), the others are not rerun.
    cancelled = {name for name, state in squeue_jobs(prefix) if state == "CANCELLED"}
    final = orchestrator(run, *ARGS)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    made = list(manifests(run).values())
    assert len(made) == 3 and all(m.ok for m in made), [m.failure for m in made if m.failure]
    rerun = {name for name, n in squeue_names(prefix).items() if n == 2}
    assert rerun == cancelled, (rerun, cancelled)
    assert set(squeue_names(prefix).values()) <= {1, 2}


@pytest.mark.slow
def test_evotrain_cancel_stops_the_jobs_of_a_dead_orchestrator_and_run_resumes(tmp_path: Path) -> None:
    gpu_substrate(tmp_path, train_sleep_s=8)
    run = make_tiny_campaign(tmp_path)
    prefix = f"evotrain-cancel-{os.getpid()}-{time.time_ns() % 10**6}"
    use_slurm(run, prefix)
    proc = orchestrator(run, *ARGS)
    wait_for_running_trains(prefix, 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cancel = subprocess.run([sys.executable, "-m", "evotrain", "cancel", str(run)], capture_output=True, text=True)
    assert cancel.returncode == 0, cancel.stderr
    assert "cancelled" in cancel.stdout
    states = squeue_states(prefix)
    assert not {"RUNNING", "PENDING", "COMPLETING"} & set(states), states
    again = subprocess.run([sys.executable, "-m", "evotrain", "cancel", str(run)], capture_output=True, text=True)
    assert again.returncode == 0 and "slurm job" in again.stdout  # still unfinished in the traces: no-op cancel
    final = orchestrator(run, *ARGS)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    made = list(manifests(run).values())
    assert len(made) == 3 and all(m.ok for m in made), [m.failure for m in made if m.failure]
