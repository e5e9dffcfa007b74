"""What a campaign did, in a few lines: the external score before and after, whether the change clears the
external noise, what it promoted (with each promotion's gain and interval), what it stopped trusting and why —
read from the campaign's files alone (manifests, evidence and policies).

"Before" is the substrate's recipe as the first round's anchor scored on the external target; "after" is the
final pick (`final_pick`: the best external score the target returned). The interval of after − before is the
normal approximation for the difference of two independent external scores, each with the external sd the latest
evidence measured (its `external_noise_band`): gain ± 1.96·√2·sd. It "clears the noise" when the gain exceeds the
external threshold (k·sd) the loop itself uses to confirm an external gain. The final pick is the best of every
submission, so its score is biased upward by that choice; the verdict says how many submissions it was chosen from.
A leaderboard's held-out (private) scores are never in the campaign; a caller that owns the board may pass them
in to show beside the public ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from evotrain.campaign.final_pick import FinalPick, final_pick
from evotrain.campaign.store import CampaignStore
from evotrain.records.evidence import Calibration, Evidence, Interval
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Provenance, StandingRecipe

TRUST_ACTIONS = ("untrust_domain", "objective_mode", "retrust_domain")
Z95 = 1.959963984540054  # two-sided 95 % normal quantile


@dataclass(frozen=True)
class Decision:
    round: int  # the round whose evidence led to it
    action: str
    reason: str


@dataclass(frozen=True)
class Promotion:
    """A change that became the standing recipe: the candidate it came from, its dev gain and that gain's interval
    (from the evidence of the round the candidate ran in), and the knob changes it added."""

    round: int  # the round whose evidence promoted it
    action: str
    reason: str
    source: str | None
    gain: float | None = None
    interval: Interval | None = None
    gain_method: str = ""
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExternalChange:
    """The final pick's external score against the substrate's, with the noise the campaign measured."""

    before: float
    after: float
    sign: float
    sd: float | None  # sd of one external score (evidence calibration.external_noise_band)
    sd_source: str
    threshold: float | None  # k·sd: the loop's bar for an external gain

    @property
    def gain(self) -> float:
        """after − before, in the metric's own units (negative is better for a metric that is minimised)."""
        return self.after - self.before

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.sd is None:
            return None
        half = Z95 * math.sqrt(2.0) * self.sd
        return self.gain - half, self.gain + half

    @property
    def cleared(self) -> bool:
        """Whether the gain (in the metric's direction) exceeds the external threshold."""
        return self.threshold is not None and self.sign * self.gain > self.threshold


@dataclass(frozen=True)
class Verdict:
    rounds: int  # rounds with a policy written after them
    substrate: Manifest | None  # the first round's anchor: the substrate's recipe
    pick: FinalPick | None
    promotions: list[Promotion]
    trust: list[Decision]  # domains untrusted or trusted again, objective changes
    standing_source: str | None  # the final standing recipe's source candidate (None: the substrate's recipe)
    standing_changes: list[str]
    private: Mapping[str, float] = field(default_factory=dict)  # submission id -> held-out score, when known
    sign: float = 1.0
    standing: StandingRecipe = field(default_factory=StandingRecipe)  # the final standing recipe
    pick_manifest: Manifest | None = None
    submissions: int = 0  # external submissions the final pick was chosen from
    calibration: Calibration | None = None  # the latest closed round's
    root: Path | None = None  # the campaign folder

    @property
    def external_before(self) -> float | None:
        return self.substrate.external.score if self.substrate and self.substrate.external else None

    def private_of(self, submission_id: str | None) -> float | None:
        return self.private.get(submission_id) if submission_id else None

    @property
    def private_before(self) -> float | None:
        ext = self.substrate.external if self.substrate else None
        return self.private_of(ext.submission_id) if ext else None

    @property
    def private_after(self) -> float | None:
        return self.private_of(self.pick.submission_id) if self.pick else None

    @property
    def external(self) -> ExternalChange | None:
        before = self.external_before
        if before is None or self.pick is None:
            return None
        cal = self.calibration
        return ExternalChange(
            before=before,
            after=self.pick.external,
            sign=self.sign,
            sd=cal.external_noise_band if cal else None,
            sd_source=cal.external_noise_source if cal else "",
            threshold=cal.external_threshold if cal else None,
        )

    @property
    def best_checkpoint(self) -> Path | None:
        """The final pick's selected checkpoint folder (the one its external score was made from)."""
        m = self.pick_manifest
        if m is None or m.external is None or self.root is None:
            return None
        candidate = CampaignPaths(self.root).round(m.round).candidate(m.candidate_id.split("/", 1)[1])
        return candidate.checkpoints / m.external.checkpoint

    @property
    def pick_is_standing(self) -> bool:
        """Whether the final pick ran the final standing recipe (same diff against the substrate)."""
        return self.pick_manifest is not None and self.pick_manifest.recipe_diff == self.standing.diff


def campaign_verdict(store: CampaignStore, *, sign: float = 1.0, private: Mapping[str, float] | None = None) -> Verdict:
    """The verdict of every round that has closed (its policy for the next round written)."""
    closed = 0
    while store.policy_or_none(closed + 2) is not None:
        closed += 1
    manifests = store.manifests(up_to_round=closed) if closed else []
    by_id = {m.candidate_id: m for m in manifests}
    anchors = sorted((m for m in manifests if m.role == "anchor"), key=lambda m: (m.round, m.candidate_id))
    evidence = {r: _evidence_or_none(store, r) for r in range(1, closed + 1)}
    promotions: list[Promotion] = []
    trust: list[Decision] = []
    for round_no in range(2, closed + 2):
        policy = store.policy(round_no)
        before = store.policy(round_no - 1).standing_recipe
        for entry in policy.changelog:
            if entry.action == "promote":
                promotions.append(_promotion(entry, before, policy.standing_recipe, by_id, evidence))
            elif entry.action in TRUST_ACTIONS:
                trust.append(Decision(entry.round, entry.action, entry.reason))
    final = store.policy_or_none(closed + 1)
    standing = final.standing_recipe if final else StandingRecipe()
    pick = final_pick(manifests, sign=sign)
    latest = evidence.get(closed)
    return Verdict(
        rounds=closed,
        substrate=anchors[0] if anchors and anchors[0].round == 1 else None,
        pick=pick,
        promotions=promotions,
        trust=trust,
        standing_source=standing.source,
        standing_changes=[c.describe() for c in standing.changes],
        private=dict(private or {}),
        sign=sign,
        standing=standing,
        pick_manifest=by_id.get(pick.candidate_id) if pick else None,
        submissions=sum(1 for m in manifests if m.external is not None),
        calibration=latest.calibration if latest else None,
        root=store.paths.root,
    )


def _evidence_or_none(store: CampaignStore, round_no: int) -> Evidence | None:
    try:
        return store.read_evidence(round_no)
    except (FileNotFoundError, ValueError):
        return None


def _promotion(
    entry: Provenance,
    before: StandingRecipe,
    after: StandingRecipe,
    manifests: Mapping[str, Manifest],
    evidence: Mapping[int, Evidence | None],
) -> Promotion:
    source = after.source
    ran = manifests.get(source) if source else None
    ev = evidence.get(ran.round) if ran else None
    summary = next((s for s in ev.candidates if s.candidate_id == source), None) if ev else None
    added = after.changes[len(before.changes) :] if after.changes[: len(before.changes)] == before.changes else []
    return Promotion(
        round=entry.round,
        action=entry.action,
        reason=entry.reason,
        source=source,
        gain=summary.gain if summary else None,
        interval=summary.gain_interval if summary else None,
        gain_method=summary.gain_method if summary else "",
        changes=[c.describe() for c in (added or after.changes)],
    )


def promotion_line(p: Promotion) -> str:
    """One promoted change: its round, source, dev gain with its interval, and the knob changes."""
    gain = f"dev gain {p.gain:+.4f}" if p.gain is not None else "dev gain not recorded"
    if p.interval is not None:
        gain += f" (95% interval {p.interval.low:+.4f} to {p.interval.high:+.4f})"
    changes = "; ".join(p.changes) if p.changes else "no knob change recorded (a free-form edit: see the diff)"
    return f"round {p.round}: {p.source or '?'}, {gain}: {changes}"


def _score(value: float) -> str:
    return f"{value:.4f}"


def verdict_line(verdict: Verdict) -> str:
    """The verdict in one line: external before → after with its interval, whether that clears the noise, and what
    the campaign promoted. The same words close `run` and `demo`, head `result` and the report."""
    if verdict.rounds == 0:
        return "verdict: no round has closed yet"
    promoted = (
        f"{len(verdict.promotions)} change(s) promoted, the last from {verdict.standing_source}"
        if verdict.promotions
        else "nothing promoted: the final recipe is the substrate's"
    )
    ext = verdict.external
    if ext is None:
        why = "no external score" if verdict.pick is None else "the substrate's recipe has no external score"
        return f"verdict after {verdict.rounds} round(s): {why}, so no external before → after; {promoted}"
    interval = ext.interval
    spread = f", 95% interval {interval[0]:+.4f} to {interval[1]:+.4f}" if interval else ""
    pick = verdict.pick_manifest
    if pick is not None and verdict.substrate is not None and pick.candidate_id == verdict.substrate.candidate_id:
        judged = "no submission beat the substrate's recipe"
    elif pick is not None and pick.recipe_diff == "":
        judged = (
            f"but the best score is the substrate's own recipe run again ({pick.candidate_id}, another seed): "
            "the difference is noise, not a change"
        )
    elif ext.threshold is None:
        judged = "external noise not measured yet"
    elif ext.cleared:
        judged = f"beyond the external noise (threshold {ext.threshold:.4f})"
    else:
        judged = f"within the external noise (threshold {ext.threshold:.4f}): not a confirmed improvement"
    held_out = ""
    if verdict.private_before is not None and verdict.private_after is not None:
        held_out = f"; held out {_score(verdict.private_before)} → {_score(verdict.private_after)}"
    return (
        f"verdict after {verdict.rounds} round(s): external {_score(ext.before)} → {_score(ext.after)} "
        f"({ext.gain:+.4f}{spread}; best of {verdict.submissions} submissions), {judged}{held_out}; {promoted}"
    )
