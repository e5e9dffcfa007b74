"""The executor protocol: run one command with resources, on this machine or a cluster.

An executor is polled, never awaited: the orchestrator holds no model in memory and can drive many jobs. A
`JobRef` is plain data recorded in the candidate's trace, so a restarted orchestrator can re-attach to a job a
cluster is still running (or, for the local executor, kill the orphan and restart the step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from evotrain.substrate.spec import Resources, Step

StepStatus = Literal["succeeded", "failed", "timeout", "killed", "cancelled", "preempted", "node_failure", "oom"]


class StepRequest(BaseModel):
    key: str  # unique in the campaign, e.g. "r0001/c02-optimizer/evaluate/step-000050"
    step: Step
    command: str  # placeholders already rendered
    cwd: Path
    env: dict[str, str] = {}
    resources: Resources
    stdout: Path
    stderr: Path


class JobRef(BaseModel):
    executor: str
    key: str
    job_id: str
    data: dict[str, Any] = {}


class StepOutcome(BaseModel):
    status: StepStatus
    exit_code: int | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    gpu_s: float = 0.0
    gpus: list[int] = []
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class Executor(Protocol):
    name: str

    def submit(self, request: StepRequest) -> JobRef:
        """Start the step (may block until resources are free); return a reference to poll."""
        ...

    def poll(self, job: JobRef) -> StepOutcome | None:
        """The outcome once the step has ended, None while it runs."""
        ...

    def cancel(self, job: JobRef) -> None:
        """Stop the step and everything it started."""
        ...

    def recover(self, job: JobRef) -> JobRef | None:
        """For a job recorded by an earlier orchestrator process: a ref to keep polling if the job can be
        re-attached, else None (after making sure nothing of it still runs), and the step is run again."""
        ...
