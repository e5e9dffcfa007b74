"""The worker protocol: homogeneous, memory-free workers that edit one sandbox along one axis.

A worker sees only its sandbox, its axis, the rendered policy and a fixed brief; it returns its edits (made in
the sandbox) and a rationale. It never writes scores: the trial harness runs the steps and writes the manifest.
Backends: the offline mutator (here); coding-agent CLIs and API tool loops implement the same protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from evotrain.policy.schema import DeadEnd
from evotrain.substrate.spec import Axis, SubstrateSpec


class KnobChange(BaseModel):
    """A machine-readable record of one recipe value a worker changed."""

    model_config = ConfigDict(frozen=True)

    axis: str
    knob: str
    file: str
    key: str
    old: Any
    new: Any
    direction: Literal["increase", "decrease", "set"]

    def describe(self) -> str:
        return f"{self.axis}.{self.knob} ({self.file}:{self.key}) {self.old!r} → {self.new!r}"


class WorkerUsage(BaseModel):
    turns: int = 0
    wall_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    stopped_for_budget: str | None = None  # the limit an agent worker hit (it was stopped, the trial did not run)
    transcript: str | None = None  # an agent worker's recorded session (JSONL), relative to its candidate folder


class WorkerRequest(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    campaign_seed: int
    round: int
    candidate_id: str
    sandbox: Path
    spec: SubstrateSpec
    axis_name: str
    axis: Axis
    policy_markdown: str
    brief: str
    dead_ends: list[DeadEnd] = []


class WorkerResult(BaseModel):
    rationale: str
    changes: list[KnobChange] = []
    usage: WorkerUsage = WorkerUsage()
    error: str | None = None  # set when the worker failed or ran over budget: the trial does not run


class Worker(Protocol):
    name: str

    def propose(self, request: WorkerRequest) -> WorkerResult:
        """Edit files in `request.sandbox` along `request.axis`; return what was changed and why."""
        ...
