"""The deterministic rule meta agent: the default way the rolling policy learns from a round's evidence.

In order: noise rules from anchors and external bookkeeping (both measured by `policy.measurements`); the
proxy-aware reversal when calibration flags decoupled dev domains; promotion (or a replicate for a near-threshold
win); dead ends; axis retirement; axis-category rotation on an external plateau; asks. Every change is logged in
the changelog with its round. The same constitution functions the caller enforces with are used here, so a
proposal from this agent keeps every rule.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from evotrain.evidence import stats
from evotrain.evidence.patterns import round_axis_verdicts
from evotrain.evidence.reading import RECIPE_FAILURES
from evotrain.policy.constitution import Constitution
from evotrain.policy.constitution_checks import may_trust_again, promotion_refusals, transferred_gains
from evotrain.policy.measurements import measure
from evotrain.policy.meta_protocol import MetaInputs, Proposal
from evotrain.records.evidence import CandidateSummary, Evidence
from evotrain.records.manifest import Manifest
from evotrain.records.policy import AxisState, DeadEnd, Policy, Provenance, StandingRecipe
from evotrain.substrate.spec import SubstrateSpec

BASE_ASK = "explore your assigned axis with one clear, single-variable change and say why you expect it to help"
FREE_FORM = "(free-form edit)"  # the knob name of a dead end recorded for an edit that declared no knob change


def proxy_ask(domain: str, sign: float = 1.0) -> str:
    """The ask for an untrusted domain, in the metric's direction (a minimised metric's dev score may rise)."""
    worsen, improve = ("lower", "raising") if sign > 0 else ("raise", "lowering")
    return (
        f"interventions that may {worsen} the dev score on {domain} while {improve} the external score: rebalance "
        f"over-represented domains, select checkpoints by the reweighted objective; treat raw dev gains on {domain} "
        "as suspect unless an external probe confirms them"
    )


@dataclass
class _Step:
    """What every rule of the agent reads, and the policy it writes."""

    previous: Policy
    nxt: Policy
    evidence: Evidence
    spec: SubstrateSpec
    history: Sequence[Manifest]
    constitution: Constitution

    @property
    def round(self) -> int:
        return self.evidence.round

    @property
    def sign(self) -> float:
        return self.spec.metric.sign

    @property
    def threshold(self) -> float | None:
        return self.evidence.calibration.dev_threshold

    def log(self, action: str, reason: str) -> Provenance:
        entry = Provenance(round=self.round, action=action, reason=reason)
        self.nxt.changelog.append(entry)
        return entry

    def manifest(self, candidate_id: str) -> Manifest | None:
        return next((m for m in self.history if m.candidate_id == candidate_id), None)


class RuleMetaAgent:
    name = "rules"

    def __init__(self, *, downweight: float = 0.25) -> None:
        if not 0.0 <= downweight < 1.0:
            raise ValueError("downweight must be in [0, 1): it lowers the weight of an untrusted domain")
        self.downweight = downweight

    def propose(self, inputs: MetaInputs) -> Proposal:
        policy, evidence, spec, history = inputs.policy, inputs.evidence, inputs.spec, inputs.history
        constitution = inputs.constitution
        nxt = policy.model_copy(deep=True)
        nxt.round = policy.round + 1
        nxt.parent_sha256 = policy.sha256()
        nxt.changelog = []
        nxt.replicate = []
        nxt.combine = []
        step = _Step(policy, nxt, evidence, spec, history, constitution)
        measure(policy, evidence, spec, history).apply(nxt)
        proxy_reversal(step, self.downweight)
        proxy_retrust(step, self.downweight)
        promoted = promote_or_replicate(step)
        plan_combination(step, promoted)
        record_dead_ends(step)
        retire_axes(step)
        rotation_ask = rotate_categories(step)
        nxt.asks = [BASE_ASK, *(proxy_ask(d, step.sign) for d in nxt.objective.untrusted_domains)]
        if rotation_ask:
            nxt.asks.append(rotation_ask)
        if not nxt.changelog:
            step.log("kept", "the evidence called for no change")
        return Proposal(nxt)


# ---- the proxy-aware reversal --------------------------------------------------------------------------------
def proxy_reversal(step: _Step, downweight: float) -> None:
    """Stop trusting dev domains whose gains no longer reach the external target; select by the reweighted
    objective; ask for interventions that may worsen the proxy while improving the external score."""
    objective = step.nxt.objective
    flagged = [d for d in step.evidence.calibration.decoupled_domains if d not in objective.untrusted_domains]
    if not flagged:
        return
    weights = stats.domain_weights(step.spec.metric.domains, objective.domain_weights)
    for domain in flagged:
        cal = next(c for c in step.evidence.calibration.per_domain if c.domain == domain)
        old = weights.get(domain, 1.0)
        weights[domain] = old * downweight
        entry = step.log(
            "untrust_domain",
            f"{domain}: its dev score, beyond the other domains', moved past the domain noise band (up or down) in "
            f"{cal.dev_gain_above_noise} candidate(s) while the external score of {cal.external_flat_among_them} did "
            f"not follow past the external band (nor halfway to what transfer implied); weight {old:g} → "
            f"{weights[domain]:g}, marked untrusted",
        )
        objective.provenance.append(entry)
        objective.untrusted_domains.append(domain)
    objective.domain_weights = weights
    if objective.mode != "proxy_aware" or objective.checkpoint_criterion != "objective":
        entry = step.log(
            "objective_mode",
            "proxy_aware: candidates and checkpoints are ranked by the reweighted objective, not raw dev",
        )
        objective.provenance.append(entry)
    objective.mode = "proxy_aware"
    objective.checkpoint_criterion = "objective"


def proxy_retrust(step: _Step, downweight: float) -> None:
    """Trust an untrusted domain again once the evidence no longer flags it and its dev gains reach the external
    target again (the calibration is cumulative, so transfers must now outnumber the flat probes)."""
    objective = step.nxt.objective
    per_domain = {c.domain: c for c in step.evidence.calibration.per_domain}
    for domain in list(objective.untrusted_domains):
        cal = per_domain.get(domain)
        if cal is None or not may_trust_again(cal):
            continue
        weights = stats.domain_weights(step.spec.metric.domains, objective.domain_weights)
        old = weights.get(domain, 1.0)
        weights[domain] = 1.0 if downweight == 0 else min(1.0, old / downweight)
        objective.domain_weights = weights
        objective.untrusted_domains.remove(domain)
        entry = step.log(
            "retrust_domain",
            f"{domain}: {transferred_gains(cal)} of the {cal.dev_gain_above_noise} candidate(s) that moved its dev "
            f"score, beyond the other domains', past the domain noise band moved the external score with it "
            f"({cal.external_flat_among_them} stayed flat); weight {old:g} → {weights[domain]:g}, trusted again",
        )
        objective.provenance.append(entry)


# ---- promotion -----------------------------------------------------------------------------------------------
REPLICATE_LIMIT = 3  # recipes re-run in one round, the most promising first: the rest of the slots explore
MAX_RUNS = 3  # runs of one recipe (the candidate and its replicates) before the loop stops spending on it


@dataclass(frozen=True)
class _Contender:
    source: str  # the candidate whose recipe would be promoted
    run: CandidateSummary  # this round's run of that recipe (the candidate itself, or its replicate)
    gain: float  # the evidence for it: its gain, or its mean with its replicates
    runs: int  # how many runs that evidence averages


def _contenders(step: _Step) -> list[_Contender]:
    out: dict[str, _Contender] = {}
    for s in step.evidence.candidates:
        if s.role == "anchor" or s.gain is None or s.status != "ok":
            continue
        source = s.replicate_of if s.role == "replicate" and s.replicate_of else s.candidate_id
        if source in out:
            continue
        runs = stats.recipe_run_gains(step.history, step.sign, source, step.nxt.objective.domain_weights)
        out[source] = _Contender(source, s, sum(runs) / len(runs) if runs else s.gain, max(1, len(runs)))
    return sorted(out.values(), key=lambda c: -c.gain)


def _reweighted_gain(step: _Step, s: CandidateSummary) -> float | None:
    return stats.weighted_objective(s.domain_gains, step.nxt.objective.domain_weights) if s.domain_gains else None


def promote_or_replicate(step: _Step) -> _Contender | None:
    """Promote the best contender whose evidence clears the threshold (for a mean of n runs, threshold/√n) and that
    no rule refuses; re-run the promising ones — a win near the threshold, a gain that one more run at the same
    size would carry over the threshold, a gain the external target confirms, and the other winners of a round
    that promoted one (re-run on top of the new standing recipe, so that changes stack only once tested together).
    """
    threshold = step.threshold
    if threshold is None:
        return None
    margin = step.previous.noise.replicate_margin
    promoted: _Contender | None = None
    again: list[tuple[_Contender, str]] = []
    for c in _contenders(step):
        concentrated = _concentrated(step, c.run)
        pull = _untrusted_pull(step, c, concentrated)
        if pull:
            step.log("not_promoted", f"{c.source}: {pull}")
            continue
        required = stats.threshold_for_runs(threshold, c.runs)
        if c.gain <= required:
            why = _worth_another_run(step, c, threshold)
            if why:
                again.append((c, why))
            continue
        refusals = promotion_refusals(
            c.source,
            previous=step.previous,
            evidence=step.evidence,
            constitution=step.constitution,
            spec=step.spec,
            history=step.history,
        )
        vetoes = [r for r in refusals if r.rule == "external_authoritative"]
        if vetoes:
            if c.runs < MAX_RUNS and _contradiction_within_noise(step, c, required):
                # One external score has the external noise too: a dev win it contradicts only within that noise
                # gets one more run (and, ranked high, one more probe) before it is dropped.
                again.append((c, f"{vetoes[0].reason}; within the external noise, so one more seed and probe"))
            else:
                step.log("not_promoted", f"{c.source}: " + "; ".join(r.reason for r in refusals))
            continue
        reweighted = _reweighted_gain(step, c.run)
        if step.nxt.objective.untrusted_domains and reweighted is not None and reweighted <= required:
            if not _externally_confirmed(step, c.run):
                step.log(
                    "not_promoted",
                    f"{c.source}: its gain {c.gain:+.4f} shrinks to {reweighted:+.4f} under the reweighted objective "
                    "and no external probe confirms it",
                )
                continue
        if c.runs == 1 and c.gain <= threshold * (1 + margin):
            again.append(
                (
                    c,
                    f"gain {c.gain:+.4f} is within ×(1 + {margin:g}) of the threshold {threshold:.4f}; one more "
                    "seed before promotion",
                )
            )
            continue
        if c.runs == 1 and step.evidence.calibration.seed_sd is None:
            again.append(
                (
                    c,
                    f"gain {c.gain:+.4f} clears the threshold {threshold:.4f}, but that threshold holds no seed noise "
                    "yet (one anchor run, no replicate: item noise only), so one run cannot clear it; one more seed",
                )
            )
            continue
        if refusals:
            step.log("not_promoted", f"{c.source}: " + "; ".join(r.reason for r in refusals))
            continue
        if concentrated is not None and not _externally_confirmed(step, c.run):
            domain, share = concentrated
            again.append(
                (
                    c,
                    f"{share:.0%} of its gain {c.gain:+.4f} comes from {domain}: a gain concentrated in one domain is "
                    "promoted only once the external target confirms it (its external gain "
                    f"{_fmt(c.run.external_gain)} is not above the external threshold "
                    f"{_fmt(step.evidence.calibration.external_threshold)}); one more seed, one more probe",
                )
            )
            continue
        if promoted is None:
            if _promote(step, c):
                promoted = c
            continue
        if _knobs(step, c) & _knobs(step, promoted):
            step.log(
                "not_promoted",
                f"{c.source}: also cleared the threshold, but it moves a knob that the promoted {promoted.source} "
                "moves; the promoted recipe stands",
            )
            continue
        again.append(
            (
                c,
                f"mean gain {c.gain:+.4f} over {c.runs} run(s) also cleared the threshold {required:.4f}; re-run on "
                f"top of the new standing recipe ({promoted.source}) before its change is stacked there",
            )
        )
    _queue_replicates(step, again)
    return promoted


def _untrusted_pull(step: _Step, c: _Contender, concentrated: tuple[str, float] | None) -> str | None:
    """Why a contender is the proxy's pull, or None: its dev gain sits mostly in a domain the objective no longer
    trusts (`concentrated`, from `_concentrated`) and the external target does not confirm it. Neither a promotion
    nor a re-run: that is the evidence the domain was distrusted on."""
    if concentrated is None or concentrated[0] not in step.nxt.objective.untrusted_domains:
        return None
    if _externally_confirmed(step, c.run):
        return None
    domain, share = concentrated
    return (
        f"{share:.0%} of its dev gain comes from {domain}, a domain the objective no longer trusts, and the external "
        f"target does not confirm it (external gain {_fmt(c.run.external_gain)}, threshold "
        f"{_fmt(step.evidence.calibration.external_threshold)}); neither promoted nor re-run"
    )


def _contradiction_within_noise(step: _Step, c: _Contender, required: float) -> bool:
    """Whether the external target's contradiction of a dev win could be its noise: the external shortfall is inside
    the external threshold, and the win still clears its threshold under the reweighted objective (when domains are
    untrusted: a gain that sits in a distrusted domain is no reason to spend a run)."""
    ext_threshold = step.evidence.calibration.external_threshold
    if c.run.external_gain is not None and (ext_threshold is None or c.run.external_gain <= -ext_threshold):
        return False
    if step.nxt.objective.untrusted_domains:
        reweighted = _reweighted_gain(step, c.run)
        return reweighted is not None and reweighted > required
    return True


CONCENTRATED_SHARE = 0.6  # a gain is "concentrated" when one domain contributes at least this share of it


def _fmt(value: float | None) -> str:
    return "none" if value is None else f"{value:+.4f}"


def _concentrated(step: _Step, s: CandidateSummary) -> tuple[str, float] | None:
    """(domain, share) when one dev domain contributes most of a candidate's gain beyond noise, else None.

    The gain is read under the objective (its domain weights), and also under equal weights when a domain is
    untrusted: down-weighting a distrusted domain shrinks its share of the objective gain, so a change that again
    lifts mostly that domain (the proxy's pull) would otherwise no longer look concentrated.
    """
    found = _concentration(step, s, step.nxt.objective.domain_weights)
    untrusted = step.nxt.objective.untrusted_domains
    if found is None and untrusted:
        raw = _concentration(step, s, {})
        if raw is not None and raw[0] in untrusted:
            return raw
    return found


def _concentration(step: _Step, s: CandidateSummary, objective_weights: dict[str, float]) -> tuple[str, float] | None:
    """(domain, share) when one dev domain contributes most of the gain weighted by `objective_weights`.

    A change that helps the model (a learning rate, a schedule) lifts every domain; one whose gain sits in a single
    domain is what a proxy that stopped predicting the external target looks like (the paper's round 3), and also
    what a real data-mix gain looks like: only the external target tells them apart, so such a gain waits for it.
    "Most" is a share of the positive parts; "beyond noise" means that domain's gain exceeds the mean gain of the
    others by more than k times the noise band of a difference of two domain scores (√2 · the domain's band): with
    a few hundred items a domain, one domain leads a small gain by chance in most candidates.
    """
    if len(s.domain_gains) < 2:
        return None
    weights = stats.domain_weights(list(s.domain_gains), objective_weights)
    total_weight = sum(weights.values())
    if total_weight <= 0:
        return None
    parts = {d: weights[d] * g / total_weight for d, g in s.domain_gains.items()}
    positive = sum(p for p in parts.values() if p > 0)
    if positive <= 0:
        return None
    domain = max(parts, key=lambda d: parts[d])
    share = parts[domain] / positive
    if share < CONCENTRATED_SHARE:
        return None
    band = step.evidence.calibration.domain_noise_bands.get(domain)
    others = [g for d, g in s.domain_gains.items() if d != domain]
    lead = s.domain_gains[domain] - sum(others) / len(others)
    if band is not None and lead <= step.evidence.calibration.k * math.sqrt(2) * band:
        return None
    return domain, share


def _worth_another_run(step: _Step, c: _Contender, threshold: float) -> str | None:
    """Why one more run of a contender below its threshold is worth a slot, or None."""
    if c.runs >= MAX_RUNS:
        return None
    nxt_required = stats.threshold_for_runs(threshold, c.runs + 1)
    if c.gain > nxt_required:
        required = stats.threshold_for_runs(threshold, c.runs)
        return (
            f"mean gain {c.gain:+.4f} over {c.runs} run(s) is below the threshold {required:.4f} but above "
            f"{nxt_required:.4f}, the threshold for {c.runs + 1} runs; one more seed"
        )
    if c.gain > 0 and _externally_confirmed(step, c.run):
        assert c.run.external_gain is not None
        return (
            f"the external target confirms it (external gain {c.run.external_gain:+.4f} above the external "
            f"threshold {step.evidence.calibration.external_threshold:.4f}) while its dev gain {c.gain:+.4f} is "
            "below the threshold; one more seed"
        )
    return None


def _queue_replicates(step: _Step, again: list[tuple[_Contender, str]]) -> None:
    queued = 0
    for c, why in again:
        if c.source in step.nxt.replicate:
            continue
        if c.runs >= MAX_RUNS:
            step.log("not_promoted", f"{c.source}: {why.rsplit('; ', 1)[0]}; it has run {c.runs} times, the most a "
                     "recipe gets, so it is dropped")  # fmt: skip
            continue
        if queued >= REPLICATE_LIMIT:
            step.log("not_replicated", f"{c.source}: {why.rsplit('; ', 1)[0]}; the round's {REPLICATE_LIMIT} re-runs "
                     "went to stronger contenders")  # fmt: skip
            continue
        step.nxt.replicate.append(c.source)
        step.log("replicate", f"{c.source}: {why}")
        queued += 1


def _knobs(step: _Step, c: _Contender) -> set[str]:
    run = step.manifest(c.run.candidate_id)
    source = step.manifest(c.source)
    changes = [*(run.changes if run else []), *(source.changes if source else [])]
    return {f"{ch.axis}.{ch.knob}" for ch in changes}


def _externally_confirmed(step: _Step, s: CandidateSummary) -> bool:
    """Whether the external target confirms a gain: its external gain clears the external noise threshold."""
    ext_threshold = step.evidence.calibration.external_threshold
    return s.external_gain is not None and ext_threshold is not None and s.external_gain > ext_threshold


def _promote(step: _Step, c: _Contender) -> bool:
    files = c.run.recipe_files
    source = step.manifest(c.source)
    run = step.manifest(c.run.candidate_id) or source
    if files is None or source is None or run is None:
        step.log(
            "not_promoted", f"{c.source}: its manifest records no recipe files that could become a standing recipe"
        )
        return False
    if not files:
        step.log("not_promoted", f"{c.source}: its sandbox does not differ from the substrate; nothing to promote")
        return False
    previous = step.nxt.standing_recipe
    runs = f" (mean of {c.runs} runs)" if c.runs > 1 else ""
    entry = step.log(
        "promote",
        f"{c.source} becomes the standing recipe: objective gain {c.gain:+.4f}{runs} over its anchor, above the "
        f"threshold {stats.threshold_for_runs(step.threshold or 0.0, c.runs):.4f}"
        + (f"; external {c.run.external:.4f}" if c.run.external is not None else "; no external score yet"),
    )
    # A replicate re-run on a newer standing recipe holds that recipe plus the source's change: its changes are the
    # ones applied on top of the standing recipe.
    changes = run.changes if run.role == "replicate" and run.changes else source.changes
    step.nxt.standing_recipe = StandingRecipe(
        files=dict(files),
        diff=run.recipe_diff,
        source=c.source,
        changes=[*previous.changes, *changes],
        provenance=[*previous.provenance, entry],
    )
    return True


# ---- combination ---------------------------------------------------------------------------------------------
COMBINE_SHARE = 0.5  # a change joins a combination when its mean gain is at least this share of its threshold


def plan_combination(step: _Step, promoted: _Contender | None) -> None:
    """Name the promising unpromoted changes for the next round to run together on the standing recipe.

    One-knob probes measure changes one at a time, and each reaches the standing recipe only once it clears the
    noise threshold alone; changes too small to clear it alone may clear it together. A change of this round joins
    when its mean gain is at least half its threshold (and positive under the reweighted objective, when domains
    are untrusted), the external target does not contradict it, its gain is not concentrated in one dev domain
    beyond noise (unless the external target confirms it), its edits are declared knob changes, and no better
    candidate (or the change promoted now) moves the same knob. The previous combination's changes carry over unless
    that combination lost, or a promotion since then moved their knobs (their gain was measured from values the
    recipe no longer has).
    """
    if step.threshold is None:
        return
    standing = _standing_knob_values(step, promoted)
    if standing is None:
        return
    taken = _knobs(step, promoted) if promoted is not None else set()
    chosen: list[str] = []
    for c in _contenders(step):
        if c is promoted or c.gain <= COMBINE_SHARE * stats.threshold_for_runs(step.threshold, c.runs):
            continue
        if not _combinable(step, c):
            continue
        knobs = _knobs(step, c)
        if not knobs or knobs & taken or not _applies_to(step, c.source, standing):
            continue
        taken |= knobs
        chosen.append(f"{c.source} ({c.gain:+.4f} over {c.runs} run(s))")
        step.nxt.combine.append(c.source)
    for source in _carried_over(step, standing):
        knobs = {f"{ch.axis}.{ch.knob}" for ch in source.changes}
        if knobs & taken:
            continue
        taken |= knobs
        chosen.append(f"{source.candidate_id} (carried over from the round {step.round} combination)")
        step.nxt.combine.append(source.candidate_id)
    if len(step.nxt.combine) < 2:
        step.nxt.combine = []
        return
    step.log("combine", "the next round runs these changes together on the standing recipe: " + "; ".join(chosen))
    # A re-run that only adds evidence the combination gathers too gives its slot to a probe: an earlier
    # combination (the new one holds its changes), or a change below its threshold that the combination holds.
    for source_id in list(step.nxt.replicate):
        m = step.manifest(source_id)
        weak = source_id in step.nxt.combine and source_id not in _above_threshold(step)
        if m is not None and (m.role == "combination" or weak):
            step.nxt.replicate.remove(source_id)
            step.log("not_replicated", f"{source_id}: the next round's combination runs its change, with others")


def _above_threshold(step: _Step) -> set[str]:
    assert step.threshold is not None
    return {c.source for c in _contenders(step) if c.gain > stats.threshold_for_runs(step.threshold, c.runs)}


def _standing_knob_values(step: _Step, promoted: _Contender | None) -> dict[str, object] | None:
    """Every declared knob's value in the next round's standing recipe, read from the manifest of the run it is."""
    run = step.manifest(promoted.run.candidate_id) if promoted is not None else None
    if run is None:
        run = stats.round_anchor(step.history, step.round)
    return dict(run.knob_values) if run is not None and run.knob_values else None


def _applies_to(step: _Step, source_id: str, standing: dict[str, object]) -> bool:
    """Whether a candidate's change still applies: the knobs it moved hold, in the standing recipe, the values it
    moved them from (the values its round's anchor ran), and it is not already there."""
    source = step.manifest(source_id)
    anchor = stats.round_anchor(step.history, source.round) if source is not None else None
    if source is None or anchor is None or not source.changes:
        return False
    knobs = {f"{ch.axis}.{ch.knob}" for ch in source.changes}
    if any(k not in standing or anchor.knob_values.get(k) != standing[k] for k in knobs):
        return False
    return any(source.knob_values.get(k) != standing[k] for k in knobs)


def _carried_over(step: _Step, standing: dict[str, object]) -> list[Manifest]:
    """The previous combination's sources that still apply, unless the combination it ran lost."""
    if not step.previous.combine:
        return []
    ran = [s for s in step.evidence.candidates if s.role == "combination"]
    if any(s.gain is None or s.gain <= 0 for s in ran):
        step.log(
            "combination_dropped",
            f"the round {step.round} combination of {', '.join(step.previous.combine)} did not beat its anchor; its "
            "changes are not carried over",
        )
        return []
    dead = step.nxt.dead_ends
    out = []
    for source_id in step.previous.combine:
        source = step.manifest(source_id)
        if source is None or not _applies_to(step, source_id, standing):
            continue
        if any(d.blocks(ch.axis, ch.knob, ch.direction, ch.new) for d in dead for ch in source.changes):
            continue
        out.append(source)
    return out


def _combinable(step: _Step, c: _Contender) -> bool:
    source = step.manifest(c.source)
    if source is None or source.role != "worker" or not source.changes:
        return False
    if not set(source.edited_files) <= {ch.file for ch in source.changes}:
        return False  # a free-form edit: only declared knob changes can be applied together
    if step.nxt.objective.untrusted_domains:
        reweighted = _reweighted_gain(step, c.run)
        if reweighted is None or reweighted <= 0:
            return False
    if _concentrated(step, c.run) is not None and not _externally_confirmed(step, c.run):
        return False
    refusals = promotion_refusals(
        c.source,
        previous=step.previous,
        evidence=step.evidence,
        constitution=step.constitution,
        spec=step.spec,
        history=step.history,
    )
    return not any(r.rule == "external_authoritative" for r in refusals)


# ---- dead ends -----------------------------------------------------------------------------------------------
def _harm(step: _Step, m: Manifest, gains: dict[str, float]) -> str | None:
    """Why this worker's change belongs in "Don't waste budget on", or None."""
    if m.round in stats.failed_anchor_rounds(step.history):
        return None
    if m.failure is not None and m.failure.failure_class in RECIPE_FAILURES:
        return f"the trial failed ({m.failure.failure_class}: {m.failure.message})"
    gain = gains.get(m.candidate_id)
    # One run charges a whole direction only when its loss clears the noise threshold; a threshold of zero (no
    # noise measured) would make every unlucky draw a dead end, so it charges nothing.
    if gain is not None and step.threshold is not None and step.threshold > 0 and gain < -step.threshold:
        return f"objective gain {gain:+.4f}, below −threshold {-step.threshold:.4f}"
    return None


def changed_knobs(m: Manifest) -> list[str]:
    """The distinct knobs a candidate's change moved (`axis.knob`), in order."""
    return list(dict.fromkeys(f"{c.axis}.{c.knob}" for c in m.changes))


def record_dead_ends(step: _Step) -> None:
    """A harmful or failed change becomes a dead end only when it isolated its knob: a candidate that changed two
    knobs or more charges none of them (its loss could be either's)."""
    gains = stats.candidate_gains(step.history, step.sign)
    for m in step.history:
        if m.round != step.round or m.role != "worker" or m.axis is None:
            continue
        why = _harm(step, m, gains)
        if why is None:
            continue
        knobs = changed_knobs(m)
        if len(knobs) > 1:
            step.log(
                "dead_end_not_charged",
                f"{m.candidate_id}: {why}, but it changed {len(knobs)} knobs ({', '.join(knobs)}); the change did "
                "not isolate a knob, so none is charged",
            )
            continue
        for entry in _dead_ends_for(step, m, why):
            if _already_registered(entry, step.nxt.dead_ends):
                continue
            step.nxt.dead_ends.append(entry)
            step.log("dead_end", f"{entry.description} ({m.candidate_id})")


def _already_registered(entry: DeadEnd, registry: Sequence[DeadEnd]) -> bool:
    if entry.knob == FREE_FORM:
        return any(d.axis == entry.axis and d.description == entry.description for d in registry)
    assert entry.knob is not None and entry.direction is not None
    return any(d.blocks(entry.axis, entry.knob, entry.direction, entry.value) for d in registry)


def _dead_ends_for(step: _Step, m: Manifest, why: str) -> list[DeadEnd]:
    assert m.axis is not None
    if not m.changes:
        summary = (m.rationale.strip().splitlines() or ["an edit with no recorded knob change"])[0][:200]
        return [
            DeadEnd(
                round=step.round,
                axis=m.axis,
                knob=FREE_FORM,
                description=f"{m.axis}: {summary}",
                evidence=f"{m.candidate_id}: {why}",
            )
        ]
    return [
        DeadEnd(
            round=step.round,
            axis=c.axis,
            knob=c.knob,
            direction=c.direction,
            value=c.new if c.direction == "set" else None,
            description=f"{c.describe()}",
            evidence=f"{m.candidate_id}: {why}",
        )
        for c in m.changes
    ]


# ---- axes ----------------------------------------------------------------------------------------------------
def retire_axes(step: _Step) -> None:
    """An axis whose candidates were harmful or failed in two rounds is retired (one always stays active)."""
    verdicts = round_axis_verdicts(step.history, step.sign, step.threshold)
    bad: dict[str, list[int]] = defaultdict(list)
    for (round_no, axis_name), verdict in sorted(verdicts.items()):
        if verdict in ("harmful", "failed"):
            bad[axis_name].append(round_no)
    for axis in step.nxt.axes:
        rounds = bad.get(axis.name, [])
        if axis.status != "active" or len(rounds) < 2:
            continue
        if len(step.nxt.active_axes()) <= 1:
            step.log("kept_axis", f"{axis.name} was harmful or failed in rounds {rounds} but is the last active axis")
            continue
        _set_status(step, axis, "retired", f"harmful or failed in rounds {', '.join(map(str, rounds))}")


def _set_status(step: _Step, axis: AxisState, status: str, reason: str) -> None:
    action = "retired" if status == "retired" else "activated"
    entry = step.log(action, f"{axis.name} ({axis.category}): {reason}")
    axis.status = "retired" if status == "retired" else "active"
    axis.provenance.append(entry)


def _retired_for_harm(axis: AxisState) -> bool:
    return bool(axis.provenance) and axis.provenance[-1].action == "retired" and "harmful" in axis.provenance[-1].reason


def rotate_categories(step: _Step) -> str | None:
    """After N measured rounds without external gain, retire the categories explored in them and activate the
    others (axes retired for harm only when nothing else is left). Returns the ask to favour the new ones.

    Only when the external split could have seen a gain of the size tested (the evidence's external power): a
    flat score on a split too noisy to resolve such a gain says nothing about the categories explored."""
    n = step.constitution.rotate_after_rounds_without_external_gain
    progress = stats.external_progress(step.history, step.sign, step.previous.noise.external_margin())
    if progress.rounds_without_gain < n:
        return None
    plateau = progress.plateau_rounds[-n:]
    explored = stats.categories_explored(step.history, plateau)
    rounds = ", ".join(map(str, plateau))
    power = step.evidence.calibration.external_power
    if power is not None and power.resolves is False:
        step.log(
            "rotation_deferred",
            f"no external gain in rounds {rounds}, but the external split could not have resolved a gain of the size "
            f"tested: {power.note}",
        )
        return None
    others = [a for a in step.nxt.axes if a.category not in explored]
    if not others:
        step.log(
            "rotation_skipped",
            f"no external gain in rounds {rounds}, but every category ({', '.join(sorted(explored))}) was explored "
            "there; no other category exists",
        )
        return None
    fresh = [a for a in others if not _retired_for_harm(a)] or others
    reason = f"external target flat in rounds {rounds} while {', '.join(sorted(explored))} were explored"
    for axis in fresh:
        if axis.status != "active":
            _set_status(step, axis, "active", f"rotation: {reason}")
    for axis in step.nxt.axes:
        if axis.category in explored and axis.status == "active":
            _set_status(step, axis, "retired", f"rotation: {reason}")
    categories = sorted({a.category for a in fresh})
    return f"favour the {', '.join(categories)} categor{'y' if len(categories) == 1 else 'ies'}: {reason}"
