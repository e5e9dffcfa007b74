"""The local executor: steps run as process groups on this machine, K at a time, within CPU and GPU slots.

Each step is started with `/bin/sh -c` in a new session, so it leads its own process group and a timeout or a
cancel reaches every process it started (a trainer's data-loader workers, a shell's grandchildren). GPUs are
handed out as whole devices through `CUDA_VISIBLE_DEVICES`. A group whose resident memory passes its step's
`memory_gb` is stopped and reported as `oom` (checked every second, and when its timeout falls due: memory is
checked before the timeout is declared), as SLURM's `--mem` would on a cluster. A local job cannot outlive the
orchestrator usefully (nobody would reap it), so `recover` kills an orphan left by a dead orchestrator and the step
is run again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from evotrain.environment import scrub_env
from evotrain.errors import ConfigError
from evotrain.executors.protocol import JobRef, StepOutcome, StepRequest, StepStatus

TERM_GRACE_S = 5.0  # between SIGTERM and SIGKILL of a process group
MEMORY_CHECK_S = 1.0  # how often a running group's resident memory is compared with its step's memory_gb
_PROC = Path("/proc")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --- /proc helpers (Linux): start times guard against pid reuse, group scans see grandchildren -------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: the process start time in clock ticks since boot."""
    fields = _proc_stat_fields(pid)
    return int(fields[19]) if fields else None


def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def group_members(pgid: int, *, started_at_or_after: int = 0) -> list[int]:
    """Live (non-zombie) processes of a process group.

    `killpg(pgid, 0)` alone would also count zombies, which stay in the group until their new parent reaps
    them, so the group would look alive forever where PID 1 does not reap.
    """
    if not _PROC.exists():  # not Linux: fall back to the signal probe
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z" or int(fields[2]) != pgid:
            continue
        if int(fields[19]) >= started_at_or_after:
            members.append(int(entry.name))
    return members


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of a process group's live members (/proc/<pid>/statm; pages shared between members count
    once per member, so a forking step is over- rather than under-counted)."""
    total = 0
    for pid in group_members(pgid):
        try:
            total += int((_PROC / str(pid) / "statm").read_text().split()[1]) * _PAGE_SIZE
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError, ValueError):
            continue  # ended between the scan and the read
    return total


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_group_and_wait(pgid: int, *, started_at_or_after: int = 0, timeout_s: float = 10.0) -> None:
    """SIGKILL every member of a group we do not parent, and wait until none is left."""
    deadline = time.monotonic() + timeout_s
    while True:
        members = group_members(pgid, started_at_or_after=started_at_or_after)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"process group {pgid} still has live members {members} after SIGKILL")
        time.sleep(0.05)


# --- GPU discovery ------------------------------------------------------------------------------------------


def detect_gpus() -> list[int]:
    """GPUs from CUDA_VISIBLE_DEVICES when set (empty = none), else one per line of `nvidia-smi -L`."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        if not all(part.lstrip("-").isdigit() for part in ids):
            raise ConfigError(
                f"CUDA_VISIBLE_DEVICES={visible!r} holds non-integer device ids (UUIDs or MIG names)",
                fix="set CUDA_VISIBLE_DEVICES to integer ids, or give the executor its GPUs explicitly (gpus=[0, 1])",
            )
        # CUDA stops enumerating at the first negative id.
        out = []
        for part in ids:
            if int(part) < 0:
                break
            out.append(int(part))
        return out
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if listing.returncode != 0:
        return []
    return list(range(sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))))


# --- jobs ---------------------------------------------------------------------------------------------------


@dataclass
class _Job:
    request: StepRequest
    proc: subprocess.Popen[bytes] | None
    pgid: int
    gpus: list[int]
    started: float  # time.monotonic()
    lock: threading.Lock = field(default_factory=threading.Lock)
    term_sent_at: float | None = None
    timed_out: bool = False
    cancelled: bool = False
    exit_status: int | None = None  # raw wait status of the group leader once reaped
    cpu_s: float = 0.0
    leader_ended: float | None = None
    outcome: StepOutcome | None = None
    over_memory_bytes: int | None = None  # the group's resident memory when it was stopped for memory_gb
    next_memory_check: float = 0.0  # time.monotonic()


class LocalExecutor:
    """Run steps as local process groups within `cpus` CPU slots and the given GPU ids; thread-safe."""

    name = "local"

    def __init__(self, cpus: int | None = None, gpus: list[int] | None = None, *, term_grace_s: float = TERM_GRACE_S):
        self.cpus = cpus if cpus is not None else (os.cpu_count() or 1)
        if self.cpus < 1:
            raise ConfigError(f"cpus={self.cpus}: an executor needs at least one CPU slot", fix="pass cpus >= 1")
        self.gpus = list(gpus) if gpus is not None else detect_gpus()
        if len(set(self.gpus)) != len(self.gpus):
            raise ConfigError(f"gpus={self.gpus} lists a GPU twice", fix="list each GPU id once")
        self.term_grace_s = term_grace_s
        self._slots = threading.Condition()
        self._free_cpus = self.cpus
        self._free_gpus = sorted(self.gpus)
        self._jobs: dict[str, _Job] = {}
        self._counter = 0
        self._boot_id = _boot_id()

    # -- slots --

    def _check_fits(self, request: StepRequest) -> None:
        res = request.resources
        if res.cpus > self.cpus or res.gpus > len(self.gpus):
            raise ConfigError(
                f"step {request.key!r} asks for cpus={res.cpus}, gpus={res.gpus} but this machine's executor has "
                f"cpus={self.cpus}, gpus={len(self.gpus)} {self.gpus}",
                path="evotrain.toml",
                fix=f"lower [resources.{request.step}] (or [resources.default]) in evotrain.toml, or run on a "
                "bigger machine or a cluster executor",
            )

    def _acquire(self, cpus: int, gpus: int) -> list[int]:
        with self._slots:
            self._slots.wait_for(lambda: self._free_cpus >= cpus and len(self._free_gpus) >= gpus)
            self._free_cpus -= cpus
            taken, self._free_gpus = self._free_gpus[:gpus], self._free_gpus[gpus:]
            return taken

    def _release(self, cpus: int, gpus: list[int]) -> None:
        with self._slots:
            self._free_cpus += cpus
            self._free_gpus = sorted(self._free_gpus + gpus)
            self._slots.notify_all()

    # -- protocol --

    def submit(self, request: StepRequest) -> JobRef:
        self._check_fits(request)
        gpus = self._acquire(request.resources.cpus, request.resources.gpus)
        try:
            job = self._start(request, gpus)
        except BaseException:
            self._release(request.resources.cpus, gpus)
            raise
        with self._slots:
            self._counter += 1
            job_id = f"{os.getpid()}-{self._counter}"
            self._jobs[job_id] = job
        if job.outcome is not None:  # could not start: nothing holds the slots
            self._release(request.resources.cpus, gpus)
        pid = job.proc.pid if job.proc is not None else None
        data = {
            "pid": pid,
            "pgid": job.pgid,
            "start_ticks": process_start_ticks(pid) if pid is not None else None,
            "boot_id": self._boot_id,
            "gpus": gpus,
        }
        return JobRef(executor=self.name, key=request.key, job_id=job_id, data=data)

    def _start(self, request: StepRequest, gpus: list[int]) -> _Job:
        env = {**scrub_env(os.environ), **request.env, "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus)}
        for path in (request.stdout, request.stderr):
            path.parent.mkdir(parents=True, exist_ok=True)
        header = f"=== evotrain {request.key} attempt {time.strftime('%Y-%m-%dT%H:%M:%S%z')}: {request.command}\n"
        # Log files are appended (not written through fileio): a step's output streams in as it runs, and a
        # retried step keeps the logs of its earlier attempts.
        with open(request.stdout, "ab") as out, open(request.stderr, "ab") as err:
            out.write(header.encode())
            err.write(header.encode())
            out.flush()
            err.flush()
            try:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", request.command],
                    cwd=request.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as exc:
                failed = StepOutcome(status="failed", gpus=gpus, message=f"could not start the step: {exc}")
                return _Job(request, None, -1, gpus, time.monotonic(), outcome=failed)
        return _Job(request, proc, proc.pid, gpus, time.monotonic())

    def _job(self, job: JobRef) -> _Job:
        with self._slots:
            found = self._jobs.get(job.job_id)
        if found is None:
            raise KeyError(f"job {job.job_id} ({job.key}) was not started by this executor; call recover() first")
        return found

    def poll(self, job: JobRef) -> StepOutcome | None:
        state = self._job(job)
        with state.lock:
            if state.outcome is not None:
                return state.outcome
            outcome = self._advance(state)
            if outcome is not None:
                state.outcome = outcome
                self._release(state.request.resources.cpus, state.gpus)
            return outcome

    def _advance(self, job: _Job) -> StepOutcome | None:
        """One step of the job's life: reap the leader, enforce the timeout, drain the group; the outcome at the end."""
        assert job.proc is not None
        now = time.monotonic()
        if job.exit_status is None:
            pid, status, rusage = os.wait4(job.proc.pid, os.WNOHANG)
            if pid == job.proc.pid:
                job.exit_status = status
                job.cpu_s = rusage.ru_utime + rusage.ru_stime
                job.leader_ended = now
                job.proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen never reaps it again
        if job.exit_status is None and job.term_sent_at is None:
            # memory first: a group over memory_gb when its timeout falls due, or still dying of SIGTERM for it
            # then, ran out of memory (oom), not of time
            due = now - job.started > job.request.resources.timeout_s
            if due or now >= job.next_memory_check:
                self._check_memory(job, now)
            if due and job.term_sent_at is None:
                job.timed_out = True
                self._terminate(job, now)
        if job.exit_status is None:
            self._escalate(job, now)
            return None
        # The leader is gone; processes it left behind in its group are stopped before the step counts as done.
        if group_members(job.pgid):
            if job.term_sent_at is None:
                self._terminate(job, now)
            self._escalate(job, now)
            return None
        return self._outcome(job)

    def _check_memory(self, job: _Job, now: float) -> None:
        """Stop a group whose resident memory passed the step's memory_gb (what SLURM's --mem does on a cluster)."""
        job.next_memory_check = now + MEMORY_CHECK_S
        if (rss := group_rss_bytes(job.pgid)) > job.request.resources.memory_gb * 2**30:
            job.over_memory_bytes = rss
            self._terminate(job, now)

    def _terminate(self, job: _Job, now: float) -> None:
        if job.term_sent_at is None:
            job.term_sent_at = now
            _signal_group(job.pgid, signal.SIGTERM)

    def _escalate(self, job: _Job, now: float) -> None:
        if job.term_sent_at is not None and now - job.term_sent_at >= self.term_grace_s:
            _signal_group(job.pgid, signal.SIGKILL)

    def _outcome(self, job: _Job) -> StepOutcome:
        assert job.exit_status is not None and job.leader_ended is not None
        wall = job.leader_ended - job.started
        common = {"wall_s": wall, "cpu_s": job.cpu_s, "gpu_s": wall * len(job.gpus), "gpus": job.gpus}
        exit_code = os.waitstatus_to_exitcode(job.exit_status)
        status: StepStatus
        if job.cancelled:
            status, message = "cancelled", "cancelled: the process group was killed"
        elif job.over_memory_bytes is not None:
            status = "oom"
            message = (
                f"the process group's resident memory reached {job.over_memory_bytes / 2**30:.2f} GB, over "
                f"memory_gb={job.request.resources.memory_gb:g}; it got SIGTERM, then SIGKILL after "
                f"{self.term_grace_s:g} s (raise [resources.{job.request.step}].memory_gb in evotrain.toml if the "
                "step needs more)"
            )
        elif job.timed_out:
            status = "timeout"
            message = (
                f"ran past timeout_s={job.request.resources.timeout_s:g}; "
                f"the process group got SIGTERM, then SIGKILL after {self.term_grace_s:g} s"
            )
        elif exit_code < 0:
            sig = signal.Signals(-exit_code)
            status, message = "killed", f"killed by {sig.name}"
            if sig == signal.SIGKILL:
                message += (
                    f" that evotrain did not send: possibly the kernel OOM killer "
                    f"(the step declared memory_gb={job.request.resources.memory_gb:g}; see dmesg)"
                )
        elif exit_code != 0:
            status, message = "failed", f"exited with code {exit_code}"
            if 128 < exit_code <= 128 + 64:
                with contextlib.suppress(ValueError):
                    message += f" (a shell reports death by {signal.Signals(exit_code - 128).name} this way)"
        else:
            status, message = "succeeded", ""
        return StepOutcome(status=status, exit_code=exit_code, message=message, **common)

    def cancel(self, job: JobRef) -> None:
        state = self._job(job)
        with state.lock:
            if state.outcome is not None or state.proc is None:
                return
            state.cancelled = True
            state.term_sent_at = state.term_sent_at or time.monotonic()
            _signal_group(state.pgid, signal.SIGKILL)
        while self.poll(job) is None:  # reap now, so the slots are free when cancel returns
            _signal_group(state.pgid, signal.SIGKILL)
            time.sleep(0.02)

    def recover(self, job: JobRef) -> JobRef | None:
        """Re-attach a job this executor started; kill an orphan group left by an earlier orchestrator."""
        with self._slots:
            if job.job_id in self._jobs:
                return job
        pgid = job.data.get("pgid")
        pid = job.data.get("pid")
        start_ticks = job.data.get("start_ticks")
        if not isinstance(pgid, int) or pgid <= 1 or not isinstance(pid, int) or not isinstance(start_ticks, int):
            return None  # it never started
        if job.data.get("boot_id") and job.data.get("boot_id") != self._boot_id:
            return None  # the machine rebooted since: nothing of it survives
        if process_start_ticks(pid) not in (None, start_ticks):
            # The pid was reused. Linux never reuses a number still in use as a process-group id, so our group
            # is gone entirely; the process now holding the number is someone else's.
            return None
        # The leader is ours (or gone, leaving members behind): every member of our group started no earlier
        # than the leader did.
        _kill_group_and_wait(pgid, started_at_or_after=start_ticks)
        return None

    def close(self) -> None:
        """Kill every job still running (call on orchestrator shutdown; orphans are otherwise killed by recover)."""
        with self._slots:
            jobs = [(job_id, job) for job_id, job in self._jobs.items() if job.outcome is None]
        for job_id, job in jobs:
            self.cancel(JobRef(executor=self.name, key=job.request.key, job_id=job_id))

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
