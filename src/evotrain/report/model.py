"""The report's data model: pure functions from a campaign's files (manifests, evidence, policies, round traces).

Nothing here is computed that the files do not already hold, except aggregates (a round's best, a sum of costs),
so every number the report shows traces back to one manifest, evidence or policy field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from evotrain.campaign.init import open_campaign
from evotrain.campaign.store import CampaignStore
from evotrain.campaign.verdict import Verdict, campaign_verdict, verdict_line
from evotrain.errors import ConfigError
from evotrain.records.evidence import Calibration, CandidateSummary, Evidence
from evotrain.records.layout import RoundPaths
from evotrain.records.manifest import Cost, Manifest
from evotrain.records.policy import Policy, Provenance
from evotrain.substrate.spec import load_spec

# Changelog actions that say what the policy learned (shown in the trajectory table); the routine ones (noise
# band refreshed, external best restated, kept) are in the policy section only.
LEARNED_ACTIONS = {
    "promote": "promotion",
    "replicate": "replicate",
    "combine": "combination",
    "not_promoted": "not promoted",
    "retired": "retirement",
    "active": "reactivation",
    "activated": "reactivation",
    "harmful": "retirement",
    "dead_end": "dead end",
    "untrust_domain": "objective",
    "retrust_domain": "objective",
    "objective_mode": "objective",
    "rotation_skipped": "rotation",
    "rotation_deferred": "rotation",
}


class CostTotals(BaseModel):
    candidates: int = 0
    wall_s: float = 0.0  # summed candidate wall time (compute), not the round's elapsed time
    cpu_s: float = 0.0
    gpu_s: float = 0.0
    llm_input_tokens: int = 0
    llm_output_tokens: int = 0
    llm_cost_usd: float = 0.0

    @property
    def cpu_h(self) -> float:
        return self.cpu_s / 3600.0

    @property
    def gpu_h(self) -> float:
        return self.gpu_s / 3600.0

    def plus(self, cost: Cost) -> CostTotals:
        return CostTotals(
            candidates=self.candidates + 1,
            wall_s=self.wall_s + cost.wall_s,
            cpu_s=self.cpu_s + cost.cpu_s,
            gpu_s=self.gpu_s + cost.gpu_s,
            llm_input_tokens=self.llm_input_tokens + cost.llm_input_tokens,
            llm_output_tokens=self.llm_output_tokens + cost.llm_output_tokens,
            llm_cost_usd=self.llm_cost_usd + cost.llm_cost_usd,
        )


class CandidateView(BaseModel):
    manifest: Manifest
    summary: CandidateSummary | None = None  # its line in the round evidence, once the round is closed
    summary_index: int | None = None  # index of that line in evidence.candidates
    selected_index: int | None = None  # index of the selected checkpoint in manifest.checkpoints

    @property
    def name(self) -> str:
        return self.manifest.candidate_id.split("/", 1)[1]

    @property
    def status(self) -> str:
        return self.manifest.failure.failure_class if self.manifest.failure else "ok"

    @property
    def objective(self) -> float | None:
        return self.manifest.selected.objective if self.manifest.selected else None

    @property
    def external(self) -> float | None:
        return self.manifest.external.score if self.manifest.external else None

    @property
    def change_lines(self) -> list[str]:
        return [c.describe() for c in self.manifest.changes]


class RoundView(BaseModel):
    round: int
    state: str  # "closed" or "running"
    policy: Policy  # the policy in force for this round
    next_policy: Policy | None = None  # the policy this round's evidence produced
    evidence: Evidence | None = None
    candidates: list[CandidateView] = []
    elapsed_s: float | None = None  # planned → round_closed, from the round trace
    cost: CostTotals = CostTotals()
    best_dev: CandidateView | None = None
    best_external: CandidateView | None = None
    anchor: CandidateView | None = None

    @property
    def axes_explored(self) -> list[tuple[str, int]]:
        counts = Counter(c.manifest.axis for c in self.candidates if c.manifest.role == "worker" and c.manifest.axis)
        return sorted(counts.items())

    @property
    def replicates(self) -> list[str]:
        return [c.manifest.replicate_of or "?" for c in self.candidates if c.manifest.role == "replicate"]

    @property
    def learned(self) -> list[Provenance]:
        if self.next_policy is None:
            return []
        return [p for p in self.next_policy.changelog if p.action in LEARNED_ACTIONS]

    @property
    def routine(self) -> list[Provenance]:
        """The next policy's other changelog entries (noise band, external best, kept…): shown, but folded."""
        if self.next_policy is None:
            return []
        return [p for p in self.next_policy.changelog if p.action not in LEARNED_ACTIONS]

    @property
    def best_dev_above_noise(self) -> bool:
        """Whether the round's best dev candidate's gain over its anchor cleared the threshold (evidence)."""
        return bool(self.best_dev and self.best_dev.summary and self.best_dev.summary.above_noise)

    @property
    def calibration(self) -> Calibration | None:
        return self.evidence.calibration if self.evidence else None


class DomainPoint(BaseModel):
    candidate_id: str
    round: int
    dev_gain: float  # the candidate's dev gain on this domain over its round's anchor (evidence domain_gains)
    external_gain: float  # its external score minus the reference anchor's (evidence external_gain)


class DomainCalibrationView(BaseModel):
    domain: str
    points: list[DomainPoint]
    noise_band: float | None = None
    decoupled: bool = False
    spearman: float | None = None


class PromotionView(BaseModel):
    round: int  # the round whose evidence promoted it
    source: str | None
    reason: str
    changes: list[str]
    evidence_round: int | None = None  # where its gain was measured: evidence:<round>:candidates.<index>
    summary_index: int | None = None
    gain: float | None = None
    low: float | None = None
    high: float | None = None


class VerdictCard(BaseModel):
    """The report's first screen: did it improve, by how much, is that beyond noise, what changed."""

    line: str  # verdict_line, the words `run`, `demo` and `result` print
    rounds: int
    before_id: str | None = None
    before: float | None = None
    after_id: str | None = None
    after: float | None = None
    gain: float | None = None
    low: float | None = None
    high: float | None = None
    threshold: float | None = None
    sd_source: str = ""
    evidence_round: int | None = None  # the evidence whose external noise the interval uses
    cleared: bool = False
    submissions: int = 0
    promotions: list[PromotionView] = []
    standing_source: str | None = None
    standing_diff: str = ""
    best_checkpoint: str | None = None
    pick_is_standing: bool = True


class CampaignReport(BaseModel):
    name: str
    title: str
    root: str
    metric: str
    direction: str
    domains: list[str]
    external_target: str | None
    rounds: list[RoundView]
    calibration: list[DomainCalibrationView]
    latest_evidence_round: int | None
    total_cost: CostTotals
    total_elapsed_s: float
    verdict: VerdictCard
    next_round: int | None = None  # the round the last closed one wrote a policy for, not yet planned
    next_policy: Policy | None = None

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "maximize" else -1.0

    @property
    def policy_rows(self) -> list[tuple[int, Policy, bool]]:
        """(round, policy, is the next round's) for each round's policy, then the next round's, once written."""
        rows = [(r.round, r.policy, False) for r in self.rounds]
        if self.next_round is not None and self.next_policy is not None:
            rows.append((self.next_round, self.next_policy, True))
        return rows


T = TypeVar("T")


# ---- building ---------------------------------------------------------------------------------------------------
def build_report(run_dir: Path) -> CampaignReport:
    """Read a campaign folder (finished or still running) into the report's data model."""
    paths, config = open_campaign(run_dir)
    spec = load_spec(paths.substrate)
    sign = spec.metric.sign
    store = CampaignStore(paths)
    rounds = [view for rp in paths.rounds() if (view := _round_view(store, rp, sign)) is not None]
    latest = next((r.evidence for r in reversed(rounds) if r.evidence is not None), None)
    total = CostTotals()
    for r in rounds:
        for c in r.candidates:
            total = total.plus(c.manifest.cost)
    pending = rounds[-1].round + 1 if rounds and rounds[-1].state == "closed" else None
    next_policy = store.policy_or_none(pending) if pending is not None else None
    return CampaignReport(
        name=config.name,
        title=report_title(config.name, paths.root, spec.name),
        root=str(paths.root),
        metric=spec.metric.name,
        direction=spec.metric.direction,
        domains=list(spec.metric.domains),
        external_target=config.external.name if config.external else None,
        rounds=rounds,
        calibration=_domain_calibration(rounds, latest, list(spec.metric.domains)),
        latest_evidence_round=latest.round if latest else None,
        total_cost=total,
        total_elapsed_s=sum(r.elapsed_s or 0.0 for r in rounds),
        verdict=verdict_card(campaign_verdict(store, sign=sign), rounds),
        next_round=pending if next_policy is not None else None,
        next_policy=next_policy,
    )


GENERIC_NAMES = ("campaign", "run")  # folder names that say nothing: the parent folder names the campaign then


def report_title(name: str, root: Path, substrate: str) -> str:
    """`<substrate> campaign “<name>”`; a generic folder name (runs/demo/full/campaign) gives way to its parent's."""
    shown = root.resolve().parent.name if name in GENERIC_NAMES and root.resolve().parent.name else name
    return f"{substrate} campaign “{shown}”"


def verdict_card(verdict: Verdict, rounds: list[RoundView]) -> VerdictCard:
    ext = verdict.external
    interval = ext.interval if ext else None
    promotions = []
    for p in verdict.promotions:
        where = _summary_index(rounds, p.source)
        promotions.append(
            PromotionView(
                round=p.round,
                source=p.source,
                reason=p.reason,
                changes=p.changes,
                evidence_round=where[0] if where else None,
                summary_index=where[1] if where else None,
                gain=p.gain,
                low=p.interval.low if p.interval else None,
                high=p.interval.high if p.interval else None,
            )
        )
    checkpoint = verdict.best_checkpoint
    return VerdictCard(
        line=verdict_line(verdict),
        rounds=verdict.rounds,
        before_id=verdict.substrate.candidate_id if verdict.substrate else None,
        before=ext.before if ext else None,
        after_id=verdict.pick.candidate_id if verdict.pick else None,
        after=ext.after if ext else None,
        gain=ext.gain if ext else None,
        low=interval[0] if interval else None,
        high=interval[1] if interval else None,
        threshold=ext.threshold if ext else None,
        sd_source=ext.sd_source if ext else "",
        evidence_round=verdict.rounds or None,
        cleared=bool(ext and ext.cleared),
        submissions=verdict.submissions,
        promotions=promotions,
        standing_source=verdict.standing_source,
        standing_diff=verdict.standing.diff,
        best_checkpoint=str(checkpoint) if checkpoint else None,
        pick_is_standing=verdict.pick_is_standing,
    )


def _summary_index(rounds: list[RoundView], candidate_id: str | None) -> tuple[int, int] | None:
    for r in rounds:
        for c in r.candidates:
            if c.manifest.candidate_id == candidate_id and c.summary_index is not None:
                return r.round, c.summary_index
    return None


def _round_view(store: CampaignStore, rp: RoundPaths, sign: float) -> RoundView | None:
    """A round with a plan (running or closed); the pending next round's policy only seeds `next_policy`."""
    planned = store.planned(rp.number)
    if planned is None:
        return None
    closed = store.closed(rp.number)
    evidence = (
        _read(rp.evidence_json, Evidence, lambda: store.read_evidence(rp.number)) if rp.evidence_json.exists() else None
    )
    next_rp = store.paths.round(rp.number + 1)
    next_policy = (
        _read(next_rp.policy_json, Policy, lambda: store.read_policy(next_rp.number))
        if closed and next_rp.policy_json.exists()
        else None
    )
    summaries = {s.candidate_id: (i, s) for i, s in enumerate(evidence.candidates)} if evidence else {}
    candidates = []
    cost = CostTotals()
    for cp in rp.candidates():
        if not cp.manifest.exists():
            continue
        manifest = _load(cp.manifest, Manifest)
        index, summary = summaries.get(manifest.candidate_id, (None, None))
        candidates.append(
            CandidateView(
                manifest=manifest,
                summary=summary,
                summary_index=index,
                selected_index=_selected_index(manifest),
            )
        )
        cost = cost.plus(manifest.cost)
    return RoundView(
        round=rp.number,
        state="closed" if closed else "running",
        policy=_read(rp.policy_json, Policy, lambda: store.read_policy(rp.number)),
        next_policy=next_policy,
        evidence=evidence,
        candidates=candidates,
        elapsed_s=closed.ts - planned.ts if closed else None,
        cost=cost,
        best_dev=_best(candidates, lambda c: c.objective, sign),
        best_external=_best(candidates, lambda c: c.external, sign),
        anchor=next((c for c in candidates if c.manifest.role == "anchor"), None),
    )


def _best(candidates: list[CandidateView], value: Any, sign: float) -> CandidateView | None:
    scored = [c for c in candidates if value(c) is not None]
    return max(scored, key=lambda c: sign * value(c)) if scored else None


def _selected_index(manifest: Manifest) -> int | None:
    if manifest.selected is None:
        return None
    for i, ev in enumerate(manifest.checkpoints):
        if ev.checkpoint == manifest.selected.checkpoint:
            return i
    return None


def _domain_calibration(
    rounds: list[RoundView], latest: Evidence | None, domains: list[str]
) -> list[DomainCalibrationView]:
    """Per domain: each candidate's dev gain on it against its external gain, across every closed round."""
    cal = latest.calibration if latest else None
    by_domain = {d.domain: d for d in cal.per_domain} if cal else {}
    views = []
    for domain in domains:
        points = [
            DomainPoint(
                candidate_id=c.summary.candidate_id,
                round=r.round,
                dev_gain=c.summary.domain_gains[domain],
                external_gain=c.summary.external_gain,
            )
            for r in rounds
            for c in r.candidates
            if c.summary is not None and c.summary.external_gain is not None and domain in c.summary.domain_gains
        ]
        stats = by_domain.get(domain)
        views.append(
            DomainCalibrationView(
                domain=domain,
                points=points,
                noise_band=cal.domain_noise_bands.get(domain) if cal else None,
                decoupled=bool(cal and domain in cal.decoupled_domains),
                spearman=stats.spearman if stats else None,
            )
        )
    return views


def _read(path: Path, model: Any, read: Callable[[], T]) -> T:
    """What `read` returns (from the store, or a file); ConfigError naming the file where it is invalid."""
    try:
        return read()
    except ValueError as exc:
        raise ConfigError(
            f"cannot read {model.__name__}: {exc}",
            path=path,
            fix="run `evotrain audit RUN` to find what changed this file",
        ) from None


def _load(path: Path, model: Any) -> Any:
    return _read(path, model, lambda: model.model_validate_json(path.read_text()))
