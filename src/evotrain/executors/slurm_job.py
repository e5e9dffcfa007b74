"""The job side of the SLURM executor: runs inside the SLURM job and writes the job's own outcome file.

`python -m evotrain.executors.slurm_job --key KEY --gpus N --record PATH -- COMMAND` runs COMMAND with
`/bin/sh -c` and keeps a `JobRecord` at PATH: written when the step starts (node, GPUs) and again when it ends
(exit code, timings, CPU time, the signal SLURM sent, if any). The orchestrator reads this file instead of
relying on `sacct`, so the executor works on clusters without an accounting database.

SLURM signals every process of a job at its time limit, on `scancel` and on preemption (SIGTERM, then SIGKILL
after KillWait). The wrapper notes the SIGTERM, passes it on to the step's process group and keeps waiting, so
a step that exits on SIGTERM still gets its end record; *why* the job was stopped comes from SLURM's job state.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

from evotrain.fileio import atomic_write_json

ENV_JOB_ID = "SLURM_JOB_ID"


class JobRecord(BaseModel):
    """What a SLURM job wrote about itself (`<logs>/<step>.slurm-<job id>.json`)."""

    job_id: str
    key: str
    node: str
    cuda_visible_devices: str | None = None  # as SLURM set it from gres.conf
    job_gpus: list[int] = []  # SLURM_JOB_GPUS: the node-global ids of the allocated GPUs
    restart_count: int = 0  # SLURM_RESTART_COUNT: > 0 when SLURM requeued the job
    started_at: float
    ended_at: float | None = None
    exit_code: int | None = None  # negative: killed by that signal
    signal: str | None = None  # the first signal the wrapper received (SLURM's SIGTERM)
    cpu_s: float = 0.0

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def gpus(self) -> list[int]:
        if self.job_gpus:
            return self.job_gpus
        return _int_ids(self.cuda_visible_devices or "")


def _int_ids(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return [int(p) for p in parts] if all(p.isdigit() for p in parts) else []


def record_path(stem: Path, job_id: str) -> Path:
    """Where the job with `job_id` writes its record, for a step whose logs are `<stem>.out` / `<stem>.err`."""
    return stem.with_name(f"{stem.name}.slurm-{job_id}.json")


def _run(key: str, gpus: int, stem: Path, command: str) -> int:
    job_id = os.environ.get(ENV_JOB_ID, "none")
    env = dict(os.environ)
    if gpus == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""  # as the local executor does: a CPU step sees no GPU
    record = JobRecord(
        job_id=job_id,
        key=key,
        node=socket.gethostname(),
        cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
        job_gpus=_int_ids(env.get("SLURM_JOB_GPUS", "")),
        restart_count=int(env.get("SLURM_RESTART_COUNT", "0") or 0),
        started_at=time.time(),
    )
    path = record_path(stem, job_id)
    header = f"=== evotrain {key} attempt {time.strftime('%Y-%m-%dT%H:%M:%S%z')} slurm job {job_id}: {command}\n"
    for stream in (sys.stdout, sys.stderr):
        stream.write(header)
        stream.flush()
    atomic_write_json(path, record)

    proc = subprocess.Popen(["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        if record.signal is None:
            record.signal = signal.Signals(signum).name
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    _, status, rusage = os.wait4(proc.pid, 0)  # retried across our signal handler (PEP 475)
    proc.returncode = os.waitstatus_to_exitcode(status)
    record.ended_at = time.time()
    record.exit_code = proc.returncode
    record.cpu_s = rusage.ru_utime + rusage.ru_stime
    atomic_write_json(path, record)
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evotrain.executors.slurm_job")
    parser.add_argument("--key", required=True, help="the step key")
    parser.add_argument("--gpus", type=int, required=True, help="GPUs the step asked for")
    parser.add_argument("--stem", type=Path, required=True, help="log stem: the record goes next to the logs")
    parser.add_argument("command", help="the step's shell command")
    args = parser.parse_args(argv)
    return _run(args.key, args.gpus, args.stem, args.command)


if __name__ == "__main__":
    sys.exit(main())
