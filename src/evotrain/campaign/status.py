"""A campaign's state read from its files alone, so it works for a campaign driven elsewhere (a cluster).

For a candidate still running, its progress comes from the files its steps leave: the last trace event (stage),
the checkpoint folders train has written so far (step), and the newest evaluation report (last metric, scored
with the round's selection objective).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from evotrain.campaign.store import CampaignStore
from evotrain.errors import EvotrainError
from evotrain.records.events import Planned
from evotrain.records.layout import CampaignPaths, CandidatePaths, RoundPaths
from evotrain.records.manifest import read_manifest
from evotrain.records.policy import SelectionObjective
from evotrain.substrate.spec import Metric, load_spec
from evotrain.trial.evaluation import load_eval_report, objective
from evotrain.trial.trace import Trace, TraceEvent


class CandidateStatus(BaseModel):
    candidate_id: str
    role: str
    axis: str | None
    stage: str  # what it is doing now (from its last trace event), or "done"/failure class once the manifest is written
    objective: float | None = None
    external: float | None = None
    step: str | None = None  # the newest checkpoint train has written so far
    checkpoints: int = 0  # checkpoints written so far
    last_metric: float | None = None  # dev objective of the newest evaluated checkpoint
    last_metric_checkpoint: str | None = None
    since: float | None = None  # unix time of its last trace event (how long it has been in this stage)
    finished: bool = False  # its manifest is written
    failure: str | None = None  # a finished candidate's failure, on one line (class, step, message, fix)


class RoundStatus(BaseModel):
    round: int
    state: str  # "planned", "running", "closed", "pending"
    candidates: list[CandidateStatus]
    best_objective: float | None = None
    best_external: float | None = None

    @property
    def finished(self) -> int:
        return sum(1 for c in self.candidates if c.finished)


def campaign_status(paths: CampaignPaths) -> list[RoundStatus]:
    metric = load_spec(paths.substrate).metric
    sign = metric.sign
    store = CampaignStore(paths)
    rounds = []
    for round_paths in paths.rounds():
        events = store.events(round_paths.number)
        kinds = [e.kind for e in events]
        state = "closed" if "round_closed" in kinds else ("running" if "planned" in kinds else "pending")
        plan_event = next((e for e in events if isinstance(e, Planned)), None)
        plans: list[dict[str, Any]] = [p.model_dump() for p in plan_event.plans] if plan_event else []
        objective = _round_objective(store, round_paths.number)
        candidates = [_candidate_status(round_paths, plan, metric, objective) for plan in plans]
        planned = {c.candidate_id for c in candidates}
        # a candidate folder the plan does not name cannot come from this loop, but show it rather than hide it
        candidates += [
            _candidate_status(round_paths, {"name": cp.name}, metric, objective)
            for cp in round_paths.candidates()
            if cp.candidate_id not in planned
        ]
        objectives = [c.objective for c in candidates if c.objective is not None]
        externals = [c.external for c in candidates if c.external is not None]
        rounds.append(
            RoundStatus(
                round=round_paths.number,
                state=state,
                candidates=candidates,
                best_objective=max(objectives, key=lambda v: sign * v) if objectives else None,
                best_external=max(externals, key=lambda v: sign * v) if externals else None,
            )
        )
    return rounds


def _candidate_status(
    round_paths: RoundPaths, plan: dict[str, Any], metric: Metric, objective: SelectionObjective | None
) -> CandidateStatus:
    cp = round_paths.candidate(str(plan["name"]))
    if cp.manifest.exists():
        m = read_manifest(cp.manifest)
        return CandidateStatus(
            candidate_id=m.candidate_id,
            role=m.role,
            axis=m.axis,
            stage=m.failure.failure_class if m.failure else "done",
            finished=True,
            failure=m.failure.one_line() if m.failure else None,
            objective=m.selected.objective if m.selected else None,
            external=m.external.score if m.external else None,
            step=m.checkpoints[-1].checkpoint if m.checkpoints else None,
            checkpoints=len(m.checkpoints),
            last_metric=m.checkpoints[-1].objective if m.checkpoints else None,
            last_metric_checkpoint=m.checkpoints[-1].checkpoint if m.checkpoints else None,
        )
    events = Trace(cp.trace).events() if cp.trace.exists() else []
    last = events[-1] if events else None
    checkpoints = sorted(p.name for p in cp.checkpoints.iterdir() if p.is_dir()) if cp.checkpoints.is_dir() else []
    metric_value, metric_checkpoint = _newest_evaluation(cp, metric, objective)
    return CandidateStatus(
        candidate_id=cp.candidate_id,
        role=str(plan.get("role", "?")),
        axis=str(plan["axis"]) if plan.get("axis") else None,
        stage=describe_event(last) if last else "queued",
        step=checkpoints[-1] if checkpoints else None,
        checkpoints=len(checkpoints),
        last_metric=metric_value,
        last_metric_checkpoint=metric_checkpoint,
        since=last.ts if last else None,
    )


def describe_event(event: TraceEvent) -> str:
    """A trace event in words: `train`, `evaluate step-000100`, `evaluate step-000100 done`, `worker done`."""
    if event.kind in ("step_started", "step_finished") and event.key:
        step = " ".join(event.key.split("/")[2:])  # key: <round>/<candidate>/<step>[/<checkpoint>]
        if event.kind == "step_started":
            return step
        status = event.data.get("status", "finished")
        return f"{step} {'done' if status == 'succeeded' else status}"
    return {
        "forked": "forked; worker editing",
        "worker_finished": "worker done",
        "violations": "violations found",
        "manifest_written": "manifest written",
        "external_submitted": "external scored",
        "external_failed": "external failed",
    }.get(event.kind, event.kind)


def _round_objective(store: CampaignStore, round_no: int) -> SelectionObjective | None:
    policy = store.policy_or_none(round_no)
    return policy.objective if policy is not None else None


def _newest_evaluation(
    cp: CandidatePaths, metric: Metric, selection: SelectionObjective | None
) -> tuple[float | None, str | None]:
    """The objective of the newest checkpoint with a readable evaluation report (one being written is skipped)."""
    if selection is None or not cp.eval_dir.is_dir():
        return None, None
    for report_path in sorted(cp.eval_dir.glob("*.json"), reverse=True):
        try:
            report = load_eval_report(report_path, metric)
            return objective(report, selection, metric), report_path.stem
        except (EvotrainError, OSError, ValueError):
            continue
    return None, None
