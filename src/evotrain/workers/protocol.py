"""The worker protocol: homogeneous, memory-free workers that edit one sandbox along one axis.

A worker sees only its sandbox, its axis, the rendered policy and a fixed brief; it returns its edits (made in
the sandbox) and a rationale. It never writes scores: the trial harness runs the steps and writes the manifest.
Backends: the offline mutator (here); coding-agent CLIs and API tool loops implement the same protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from evotrain.records.ids import WorkerSeeds
from evotrain.records.manifest import KnobChange, Manifest, WorkerUsage
from evotrain.records.policy import DeadEnd
from evotrain.substrate.spec import Axis, SubstrateSpec


class WorkerRequest(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    round: int
    candidate_id: str
    seeds: WorkerSeeds  # every seed the worker may use, handed out by the loop (a worker derives none)
    sandbox: Path
    spec: SubstrateSpec
    axis_name: str
    axis: Axis
    policy_markdown: str
    brief: str
    dead_ends: list[DeadEnd] = []
    # The harness-written manifests of the campaign's earlier rounds, and this round's worker candidates in plan
    # order: what a search baseline (Optuna) rebuilds its study from. Agent workers ignore both.
    history: list[Manifest] = []
    round_candidates: list[str] = []


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
