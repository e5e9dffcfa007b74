"""The result manifest: the typed, versioned record of one trial, written by the harness, never by a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from evotrain.errors import IntegrityError

MANIFEST_VERSION = 1


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


FailureClass = Literal[
    "violation",  # the worker edited a frozen or shared path: the trial did not run
    "worker_error",  # the worker itself failed or ran over its budget
    "step_failed",  # a step exited non-zero
    "timeout",  # a step ran past its time limit (local timeout, or the cluster's)
    "killed",  # a step was killed by a signal it did not ask for
    "oom",
    "preempted",
    "node_failure",
    "cancelled",
    "missing_output",  # a step exited 0 without writing its required output
    "bad_output",  # an output file failed validation
    "no_checkpoints",  # train wrote no checkpoint
]


class Violation(BaseModel):
    path: str
    kind: Literal["frozen_edit", "shared_edit", "created_outside_editable", "deleted", "link_outside"]
    detail: str = ""


class Failure(BaseModel):
    failure_class: FailureClass
    step: str | None = None
    message: str
    exit_code: int | None = None

    def one_line(self) -> str:
        """`class at step: message` on one line (a message's `fix:` line joined with a dash), for terminals."""
        where = f" at {self.step}" if self.step else ""
        message = " — fix: ".join(" ".join(part.split()) for part in self.message.split("\n  fix: "))
        return f"{self.failure_class}{where}: {message}"


class DomainScore(BaseModel):
    score: float
    n: int


class CheckpointEval(BaseModel):
    checkpoint: str
    domains: dict[str, DomainScore]
    overall: float  # the metric's own aggregate (items or domains, per evotrain.toml)
    objective: float  # the policy's selection objective on this checkpoint
    report: str  # campaign-relative path of the evaluation report (item-level scores)


class Selection(BaseModel):
    checkpoint: str
    criterion: str  # in words, e.g. "max objective (domain weights …)"
    objective: float


class ExternalResult(BaseModel):
    target: str
    checkpoint: str
    score: float
    domains: dict[str, float] | None = None
    n: int | None = None  # external items scored, when the target says (gives a binomial external noise band)
    submission_id: str | None = None
    submitted_at: float


class StepCost(BaseModel):
    step: str
    status: str
    wall_s: float
    cpu_s: float = 0.0
    gpu_s: float = 0.0


class Cost(BaseModel):
    wall_s: float = 0.0
    cpu_s: float = 0.0
    gpu_s: float = 0.0
    llm_input_tokens: int = 0
    llm_output_tokens: int = 0
    llm_cost_usd: float = 0.0
    steps: list[StepCost] = []


# anchor: the standing recipe unchanged; worker: one axis's proposal; replicate: a fresh-seed re-run of a recipe;
# combination: the knob changes of several promising candidates applied together on the standing recipe.
CandidateRole = Literal["anchor", "worker", "replicate", "combination"]


class Manifest(BaseModel):
    schema_version: int = MANIFEST_VERSION
    campaign: str
    round: int
    candidate_id: str
    role: CandidateRole
    replicate_of: str | None = None  # for a replicate: the candidate whose recipe it re-runs with a fresh seed
    combines: list[str] = []  # for a combination: the candidates whose knob changes it applies together
    axis: str | None = None
    axis_category: str | None = None
    seed: int
    worker: str
    rationale: str = ""
    changes: list[KnobChange] = []
    # Every declared knob's value in the sandbox the trial ran (`<axis>.<knob>` → value), read by the harness after
    # the worker's edits: a trial's full configuration, which search baselines rebuild their studies from.
    knob_values: dict[str, Any] = {}
    recipe_diff: str = ""  # unified diff of the sandbox's editable files against the substrate
    edited_files: list[str] = []
    # The sandbox's edited and added editable files (relpath → full text) as the trial ran them: what promoting this
    # candidate writes as the standing recipe, so the evidence is made from the manifests alone. None when its
    # edits cannot be carried as a standing recipe (`recipe_files_problem` says why) and in a manifest written
    # before the field existed (such a candidate is not promoted).
    recipe_files: dict[str, str] | None = None
    recipe_files_problem: str | None = None
    violations: list[Violation] = []
    policy_sha256: str
    training: dict[str, float] = {}
    training_warnings: list[str] = []  # numbers of the training summary left out as not finite (a NaN loss)
    checkpoints: list[CheckpointEval] = []
    selected: Selection | None = None
    external: ExternalResult | None = None
    failure: Failure | None = None
    cost: Cost = Cost()
    worker_usage: WorkerUsage = WorkerUsage()
    started_at: float
    finished_at: float

    @property
    def ok(self) -> bool:
        return self.failure is None and self.selected is not None


def read_manifest(path: Path) -> Manifest:
    """A candidate's manifest; a damaged one (truncated, edited into invalid JSON) is an IntegrityError naming it."""
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise IntegrityError(
            f"not a valid manifest ({exc.error_count()} error(s): {exc.errors()[0]['msg']})",
            path=path,
            fix="restore the file; `evotrain audit RUN` lists what else changed",
        ) from None
