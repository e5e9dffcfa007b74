"""The SLURM executor: each step is one `sbatch` job; the job writes its own outcome record.

A step becomes a batch script that runs `python -m evotrain.executors.slurm_job`, which runs the step's command
and writes a `JobRecord` (start and end time, exit code, CPU time, the GPUs SLURM gave it) next to the step's
logs. `poll` reads that record and SLURM's view of the job: one `squeue` for all jobs in flight (at most every
`poll_s`), `scontrol show job` for a job missing from it, and `sacct` when the controller has forgotten the job
and the cluster keeps accounting. Without accounting, the record alone tells how a forgotten job ended.

Why a job ended comes from SLURM's job state: TIMEOUT (its `--time` limit), PREEMPTED, NODE_FAIL, CANCELLED,
OUT_OF_MEMORY each map to their own `StepStatus`, hence their own failure class in the manifest.

A job outlives its orchestrator: `recover` re-attaches to a recorded job id that SLURM (or the record) still
knows, so a resumed campaign never submits a running step twice. Jobs that `close` cancelled (the orchestrator
was stopped) are marked, so a later resume runs those steps again instead of recording them as cancelled.

submitit is not used: it runs pickled Python callables in its own folder layout and judges job states through
`sacct`, while our steps are shell commands with their own logs, our job ids must live in evotrain's trace, and
the executor must work on clusters without accounting. What it would save (an sbatch call, state parsing) is
small next to adapting to it.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evotrain.environment import scrub_env
from evotrain.errors import ConfigError, EvotrainError
from evotrain.executors.protocol import JobRef, StepOutcome, StepRequest, StepStatus
from evotrain.executors.slurm_job import JobRecord, record_path
from evotrain.fileio import atomic_write_text

CLIENT_COMMANDS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
CONFIG_HINT = "campaign.toml [executor.slurm]"

# States in which a job may still run (or still be stopping: COMPLETING holds the job's processes and resources).
LIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
    }
)
# Terminal SLURM job states -> StepStatus. FAILED is refined with the record (a signal means "killed").
STATE_STATUS: dict[str, StepStatus] = {
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "SPECIAL_EXIT": "failed",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "CANCELLED": "cancelled",
    "REVOKED": "cancelled",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "node_failure",
    "BOOT_FAIL": "node_failure",
    "OUT_OF_MEMORY": "oom",
}
_TRANSIENT = ("timed out", "temporarily unavailable", "unable to contact", "connection refused", "try again")
CANCEL_MARK_SUFFIX = ".cancelled-by-evotrain"


class SlurmConfig(BaseModel):
    """`[executor.slurm]` in campaign.toml."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None  # the cluster's default partition when unset
    account: str | None = None
    qos: str | None = None
    gres: str = "gpu"  # a step's GPUs are asked for as --gres=<gres>:<gpus>; "gpu:a100" picks a type
    memory: bool = True  # pass --mem from memory_gb (turn off where the cluster sets memory per GPU)
    requeue: bool = False  # let SLURM requeue a preempted/failed-node job; off: the step fails with that class
    extra_sbatch_args: list[str] = []  # e.g. ["--constraint=h100", "--exclusive"]
    job_name_prefix: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")] = "evotrain"
    poll_s: Annotated[float, Field(gt=0)] = 5.0  # at most one squeue per poll_s for all jobs in flight
    log_dir: str | None = None  # job scripts and records; next to each step's logs when unset
    python: str | None = None  # the interpreter that runs the job wrapper on compute nodes; this one when unset
    cancel_wait_s: Annotated[float, Field(gt=0)] = 120.0  # how long cancel waits for SLURM to end a job
    command_timeout_s: Annotated[float, Field(gt=0)] = 60.0  # for each sbatch/squeue/... call


class SlurmUnavailable(EvotrainError):
    """A SLURM client command failed in a way that may pass (the controller is restarting or busy)."""


class JobState(NamedTuple):
    state: str  # e.g. RUNNING, TIMEOUT ("CANCELLED by 0" from sacct is cut to its first word)
    reason: str
    name: str
    exit_code: int | None = None  # from SLURM's ExitCode=<code>:<signal>; negative for a signal


@dataclass
class _Job:
    ref: JobRef
    record: Path
    cancelled_by_us: bool = False
    outcome: StepOutcome | None = None


def cancel_mark(record: Path) -> Path:
    return record.with_name(record.name + CANCEL_MARK_SUFFIX)


def read_record(path: Path) -> JobRecord | None:
    try:
        return JobRecord.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError:  # written atomically, so only a foreign file lands here; treat as no record
        return None


def time_limit_minutes(timeout_s: float) -> int:
    """SLURM counts time limits in whole minutes: timeout_s is rounded up, to at least one minute."""
    return max(1, math.ceil(timeout_s / 60))


def _exit_code_of(text: str) -> int | None:
    """SLURM's `<code>:<signal>` as one int: the signal, negated, when there was one."""
    match = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if not match:
        return None
    code, sig = int(match.group(1)), int(match.group(2))
    return -sig if sig else code


class SlurmExecutor:
    """Run steps as SLURM batch jobs; thread-safe. See the module docstring for how outcomes are read."""

    name = "slurm"

    def __init__(self, config: SlurmConfig | None = None, *, config_path: Path | None = None, check: bool = True):
        self.config = config or SlurmConfig()
        self.config_path = config_path
        self._require_commands()
        if check:
            self._check_partition()
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._snapshot: dict[str, JobState] = {}
        self._snapshot_at = -math.inf

    # -- SLURM client commands ---------------------------------------------------------------------------

    def _where(self) -> Path | str:
        return self.config_path or CONFIG_HINT

    def _require_commands(self) -> None:
        missing = [tool for tool in CLIENT_COMMANDS if shutil.which(tool) is None]
        if missing:
            raise ConfigError(
                f"the slurm executor needs SLURM's client commands; not found on PATH: {', '.join(missing)}",
                path=self._where(),
                fix="run evotrain where SLURM is installed (a login node, or `bash scripts/slurm/install.sh` for "
                "a one-machine test cluster), or run with --executor local",
            )

    def _slurm(self, args: list[str], *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                args,
                capture_output=True,
                text=True,
                env=env,
                timeout=self.config.command_timeout_s,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(
                f"`{shlex.join(args)}` did not answer within {self.config.command_timeout_s:g} s",
                fix="check that slurmctld is up (`scontrol ping`), or raise command_timeout_s",
            ) from None

    def _check_partition(self) -> None:
        listing = self._slurm(["sinfo", "--noheader", "--format=%R"])
        if listing.returncode != 0:
            raise ConfigError(
                f"cannot reach the SLURM controller: `sinfo` says: {listing.stderr.strip()}",
                path=self._where(),
                fix="check that slurmctld runs and that SLURM_CONF (or /etc/slurm/slurm.conf) points at it",
            )
        partitions = sorted({line.strip() for line in listing.stdout.splitlines() if line.strip()})
        wanted = self.config.partition
        if wanted is not None and wanted not in partitions:
            raise ConfigError(
                f"field `partition`: partition {wanted!r} does not exist on this cluster "
                f"(it has: {', '.join(partitions) or 'none'})",
                path=self._where(),
                fix="set [executor.slurm] partition to one of those, or remove it to use the default partition",
            )

    def _squeue(self, job_ids: list[str]) -> dict[str, JobState]:
        result = self._slurm(
            ["squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", "--format=%i|%T|%r|%j"]
        )
        if result.returncode != 0:
            if "invalid job id" in result.stderr.lower():
                return {}  # none of them is known any more
            raise SlurmUnavailable(f"squeue failed: {result.stderr.strip()}")
        states = {}
        for line in result.stdout.splitlines():
            parts = line.strip().split("|", 3)
            if len(parts) == 4:
                states[parts[0]] = JobState(parts[1], parts[2], parts[3])
        return states

    def _scontrol(self, job_id: str) -> JobState | None:
        result = self._slurm(["scontrol", "--oneliner", "show", "job", job_id])
        if result.returncode != 0:
            if "invalid job id" in result.stderr.lower():
                return None
            raise SlurmUnavailable(f"scontrol show job {job_id} failed: {result.stderr.strip()}")

        def field(name: str) -> str:
            match = re.search(rf"(?:^|\s){name}=(\S*)", result.stdout)
            return match.group(1) if match else ""

        return JobState(field("JobState"), field("Reason"), field("JobName"), _exit_code_of(field("ExitCode")))

    def _sacct(self, job_id: str) -> JobState | None:
        """The accounting database's view, for jobs the controller forgot; None without accounting."""
        if shutil.which("sacct") is None:
            return None
        fields = "--format=State,JobName,ExitCode"
        result = self._slurm(["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={job_id}", fields])
        if result.returncode != 0:  # "Slurm accounting storage is disabled"
            return None
        for line in result.stdout.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[0]:
                return JobState(parts[0].split()[0], "", parts[1], _exit_code_of(parts[2]))
        return None

    def _query_one(self, job_id: str) -> JobState | None:
        return self._scontrol(job_id) or self._sacct(job_id)

    def _lookup(self, job_id: str, *, max_age: float) -> JobState | None:
        """SLURM's state of a job, from a shared squeue snapshot no older than `max_age` seconds."""
        with self._lock:
            if time.monotonic() - self._snapshot_at > max_age:
                ids = sorted({j for j, job in self._jobs.items() if job.outcome is None} | {job_id})
                self._snapshot = self._squeue(ids)
                self._snapshot_at = time.monotonic()
            found = self._snapshot.get(job_id)
        return found if found is not None else self._query_one(job_id)

    # -- submission --------------------------------------------------------------------------------------

    def job_name(self, key: str) -> str:
        return f"{self.config.job_name_prefix}:{key}"

    def _stem(self, request: StepRequest) -> Path:
        if self.config.log_dir:
            return Path(self.config.log_dir) / request.key.replace("/", "__")
        return request.stdout.parent / request.stdout.stem

    def _script(self, request: StepRequest, stem: Path) -> str:
        python = self.config.python or sys.executable
        wrapper = [python, "-m", "evotrain.executors.slurm_job"]
        wrapper += ["--key", request.key, "--gpus", str(request.resources.gpus), "--stem", str(stem), "--"]
        return (
            "#!/bin/sh\n"
            f"# evotrain step {request.key}: written by evotrain's SLURM executor; the wrapper records the outcome\n"
            f"exec {shlex.join(wrapper)} {shlex.quote(request.command)}\n"
        )

    def _sbatch_args(self, request: StepRequest, time_min: int) -> list[str]:
        res, cfg = request.resources, self.config
        args = [
            "sbatch",
            "--parsable",
            f"--job-name={self.job_name(request.key)}",
            f"--chdir={request.cwd}",
            f"--output={request.stdout}",
            f"--error={request.stderr}",
            "--open-mode=append",  # a retried step keeps the logs of its earlier attempts
            "--nodes=1",
            "--ntasks=1",
            f"--cpus-per-task={res.cpus}",
            f"--time={time_min}",
            "--requeue" if cfg.requeue else "--no-requeue",
        ]
        if cfg.memory:
            args.append(f"--mem={math.ceil(res.memory_gb * 1024)}M")
        if res.gpus:
            args.append(f"--gres={cfg.gres}:{res.gpus}")
        for flag, value in (("partition", cfg.partition), ("account", cfg.account), ("qos", cfg.qos)):
            if value:
                args.append(f"--{flag}={value}")
        return args + cfg.extra_sbatch_args

    def _live_job_running(self, script: Path, name: str) -> str | None:
        """A live job of this step that no trace recorded: the orchestrator died between sbatch and the trace."""
        result = self._slurm(["squeue", "--noheader", f"--name={name}", "--format=%i|%T|%o"])
        if result.returncode != 0:
            return None
        for line in result.stdout.splitlines():
            job_id, state, command = [*line.strip().split("|", 2), "", ""][:3]
            if state in LIVE_STATES and state != "COMPLETING" and command == str(script):
                return job_id
        return None

    def _sbatch(self, args: list[str], env: dict[str, str], request: StepRequest) -> str:
        for attempt in range(3):
            result = self._slurm(args, env=env)
            if result.returncode == 0:
                return result.stdout.strip().split(";", 1)[0]
            if not any(t in result.stderr.lower() for t in _TRANSIENT) or attempt == 2:
                break
            time.sleep(2.0 * (attempt + 1))
        raise ConfigError(
            f"sbatch refused step {request.key!r} (cpus={request.resources.cpus}, gpus={request.resources.gpus}, "
            f"memory_gb={request.resources.memory_gb:g}): {result.stderr.strip()}",
            path=self._where(),
            fix="check [resources] in evotrain.toml against the partition's nodes, and partition/account/qos/"
            "extra_sbatch_args in [executor.slurm]",
        )

    def submit(self, request: StepRequest) -> JobRef:
        stem = self._stem(request)
        script = stem.with_name(stem.name + ".sbatch")
        name = self.job_name(request.key)
        time_min = time_limit_minutes(request.resources.timeout_s)
        for path in (request.stdout, request.stderr, script):
            path.parent.mkdir(parents=True, exist_ok=True)
        job_id = self._live_job_running(script, name)
        if job_id is None:
            atomic_write_text(script, self._script(request, stem), mode=0o755)
            env = {**scrub_env(os.environ), **request.env}  # the job must not see the orchestrator's secrets
            job_id = self._sbatch([*self._sbatch_args(request, time_min), str(script)], env, request)
        ref = JobRef(
            executor=self.name,
            key=request.key,
            job_id=job_id,
            data={
                "record": str(record_path(stem, job_id)),
                "script": str(script),
                "name": name,
                "time_min": time_min,
                "gpus": request.resources.gpus,
            },
        )
        with self._lock:
            self._jobs[job_id] = _Job(ref, record_path(stem, job_id))
            self._snapshot[job_id] = JobState("PENDING", "submitted", name)
        return ref

    # -- outcomes ----------------------------------------------------------------------------------------

    def _job(self, job: JobRef) -> _Job:
        with self._lock:
            found = self._jobs.get(job.job_id)
        if found is None:
            raise KeyError(f"job {job.job_id} ({job.key}) was not submitted by this executor; call recover() first")
        return found

    def poll(self, job: JobRef) -> StepOutcome | None:
        return self._poll(self._job(job), max_age=self.config.poll_s)

    def _poll(self, job: _Job, *, max_age: float) -> StepOutcome | None:
        if job.outcome is not None:
            return job.outcome
        record = read_record(job.record)
        if record is not None and record.ended:
            max_age = min(max_age, 0.25)  # the step is over: ask SLURM soon whether the job is
        try:
            state = self._lookup(job.ref.job_id, max_age=max_age)
        except SlurmUnavailable:
            return None  # the controller may be restarting; the job is not lost for that
        if state is not None and state.name != job.ref.data.get("name"):
            state = None  # the id now names another job (a controller that restarted without its state)
        if state is not None and state.state in LIVE_STATES:
            return None
        job.outcome = self._classify(job, state, read_record(job.record))
        return job.outcome

    def _classify(self, job: _Job, state: JobState | None, record: JobRecord | None) -> StepOutcome:
        ref = job.ref
        where = f"slurm job {ref.job_id}"
        status: StepStatus
        if state is None:
            # Forgotten by the controller, and no accounting: the job's own record is all there is.
            if record is not None and record.ended:
                status, message = _status_from_exit(record)
            else:
                status = "killed"
                message = (
                    "SLURM no longer knows the job and its record shows no end: it was stopped before the step "
                    "finished (time limit, cancel, node failure), and the cluster keeps no accounting to say which"
                )
        else:
            status = STATE_STATUS.get(state.state, "failed")
            message = self._message(job, state, record, status)
            if state.state == "FAILED" and record is not None and record.ended:
                status, message = _status_from_exit(record)
        exit_code = record.exit_code if record is not None and record.ended else (state.exit_code if state else None)
        if status == "succeeded":
            exit_code = 0 if exit_code is None else exit_code
        wall = 0.0
        if record is not None:
            wall = (record.ended_at or time.time()) - record.started_at
        gpus = record.gpus if record is not None else []
        return StepOutcome(
            status=status,
            exit_code=exit_code,
            wall_s=max(wall, 0.0),
            cpu_s=record.cpu_s if record is not None else 0.0,
            gpu_s=max(wall, 0.0) * len(gpus),
            gpus=gpus,
            message=f"{where}: {message}" if message else "",
        )

    def _message(self, job: _Job, state: JobState, record: JobRecord | None, status: StepStatus) -> str:
        if status == "succeeded":
            return ""
        if status == "timeout":
            minutes = job.ref.data.get("time_min")
            return f"SLURM stopped it at its time limit (--time={minutes} min, from timeout_s)"
        if status == "cancelled":
            return "cancelled by evotrain" if job.cancelled_by_us else "cancelled from outside evotrain (scancel?)"
        if status == "preempted":
            return "preempted by a job of higher priority (requeue is off, so the step ends here)"
        if status == "node_failure":
            return f"its node failed ({state.state}, reason {state.reason or 'none'})"
        if status == "oom":
            return "killed by SLURM for using more memory than --mem (raise memory_gb)"
        started = "" if record is not None else " before the step started (see the .err log)"
        return f"SLURM job state {state.state}{started}"

    # -- cancel and re-attach ----------------------------------------------------------------------------

    def _scancel(self, job_ids: list[str]) -> None:
        if not job_ids:
            return
        result = self._slurm(["scancel", *job_ids])
        if result.returncode != 0 and "invalid job id" not in result.stderr.lower():
            raise SlurmUnavailable(f"scancel {' '.join(job_ids)} failed: {result.stderr.strip()}")

    def _wait_ended(self, jobs: list[_Job]) -> None:
        deadline = time.monotonic() + self.config.cancel_wait_s
        while any(self._poll(job, max_age=0.5) is None for job in jobs):
            if time.monotonic() > deadline:
                ids = [job.ref.job_id for job in jobs if job.outcome is None]
                raise SlurmUnavailable(
                    f"SLURM jobs {', '.join(ids)} did not end within {self.config.cancel_wait_s:g} s of scancel",
                    fix="check them with squeue; raise cancel_wait_s if the cluster's KillWait is long",
                )
            time.sleep(0.2)

    def cancel(self, job: JobRef) -> None:
        state = self._job(job)
        if state.outcome is not None:
            return
        state.cancelled_by_us = True
        self._scancel([job.job_id])
        self._wait_ended([state])

    def close(self) -> None:
        """Cancel every job still in flight (the orchestrator is stopping). Each is marked, so that a resumed
        campaign runs its step again rather than recording it as cancelled."""
        with self._lock:
            live = [job for job in self._jobs.values() if job.outcome is None]
        for job in live:
            job.cancelled_by_us = True
            self._mark_cancelled(job.record)
        self._scancel([job.ref.job_id for job in live])
        self._wait_ended(live)

    def _mark_cancelled(self, record: Path) -> None:
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cancel_mark(record), f"cancelled by evotrain at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")

    def cancel_recorded(self, job: JobRef) -> StepOutcome:
        """Cancel a job recorded in a trace by an orchestrator that is gone (`evotrain cancel`), marked so that
        a resume runs the step again; returns how it ended."""
        tracked = self._adopt(job)
        tracked.cancelled_by_us = True
        self._mark_cancelled(tracked.record)
        self._scancel([job.job_id])
        self._wait_ended([tracked])
        assert tracked.outcome is not None
        return tracked.outcome

    def _adopt(self, job: JobRef) -> _Job:
        with self._lock:
            tracked = self._jobs.get(job.job_id)
            if tracked is None:
                tracked = _Job(job, Path(job.data["record"]))
                self._jobs[job.job_id] = tracked
        return tracked

    def recover(self, job: JobRef) -> JobRef | None:
        """Re-attach to a job an earlier orchestrator submitted when SLURM or its record still knows it; None
        (run the step again) when it never ran, or when evotrain itself cancelled it on shutdown."""
        with self._lock:
            if job.job_id in self._jobs:
                return job
        if job.executor != self.name or "record" not in job.data:
            return None
        try:
            state = self._query_one(job.job_id)
        except SlurmUnavailable as exc:
            raise EvotrainError(
                f"cannot tell whether SLURM job {job.job_id} of step {job.key!r} still runs: {exc.message}",
                fix="resume once the SLURM controller answers (`scontrol ping`); evotrain never resubmits a step "
                "it cannot account for",
            ) from None
        if state is not None and state.name != job.data.get("name"):
            state = None
        record_file = Path(job.data["record"])
        if state is None and read_record(record_file) is None:
            return None  # SLURM never started it, or forgot it before it started: nothing runs
        if cancel_mark(record_file).exists():
            tracked = self._adopt(job)
            tracked.cancelled_by_us = True
            if state is not None and state.state in LIVE_STATES:
                self._scancel([job.job_id])
            self._wait_ended([tracked])
            assert tracked.outcome is not None
            if tracked.outcome.status in ("cancelled", "killed"):
                with self._lock:
                    del self._jobs[job.job_id]
                return None  # stopped by evotrain, not by the step: run it again
            return job  # it finished before the cancel reached it
        self._adopt(job)
        return job


def _status_from_exit(record: JobRecord) -> tuple[StepStatus, str]:
    code = record.exit_code
    assert code is not None
    if code == 0:
        return "succeeded", ""
    if code < 0:
        return "killed", f"the step was killed by signal {-code}" + (
            f" after the job got {record.signal}" if record.signal else ""
        )
    return "failed", f"exited with code {code}"
