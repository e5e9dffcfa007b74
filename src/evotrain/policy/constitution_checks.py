"""The constitution's checks: one per rule, run on every policy update; a violating update is refused with the
reason (`enforce` raises, `check_policy_update` lists the breaches)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evotrain.errors import ConstitutionViolation
from evotrain.evidence import stats
from evotrain.evidence.noise import external_reference
from evotrain.policy.constitution import Constitution, RuleBreach
from evotrain.records.evidence import DomainCalibration, Evidence
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SubstrateSpec


@dataclass
class _Update:
    previous: Policy
    proposed: Policy
    evidence: Evidence
    constitution: Constitution
    spec: SubstrateSpec
    history: Sequence[Manifest]
    frozen: bool = False  # a search baseline's policy (`--meta none`): it may change only its measurements
    breaches: list[RuleBreach] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def breach(self, rule: str, reason: str) -> None:
        self.breaches.append(RuleBreach(rule=rule, reason=reason))

    @property
    def sign(self) -> float:
        return self.spec.metric.sign


def is_promotion(previous: Policy, proposed: Policy) -> bool:
    """Whether the standing recipe changed to a new, non-empty recipe (an emptied recipe returns to the substrate)."""
    old, new = previous.standing_recipe, proposed.standing_recipe
    changed = old.files != new.files or old.source != new.source
    return changed and bool(new.files or new.source)


def _check_policy_chain(u: _Update) -> None:
    if u.proposed.parent_sha256 != u.previous.sha256():
        u.breach("policy_chain", "parent_sha256 does not name the hash of the policy it replaces")
    if u.proposed.round != u.previous.round + 1:
        u.breach("policy_chain", f"governs round {u.proposed.round}, but the next round is {u.previous.round + 1}")


def _check_dead_ends(u: _Update) -> None:
    prev, new = u.previous.dead_ends, u.proposed.dead_ends
    if new[: len(prev)] != prev:
        kept = sum(1 for a, b in zip(prev, new, strict=False) if a == b)
        u.breach(
            "dead_ends_append_only",
            f"the dead-end registry must keep its {len(prev)} earlier entries unchanged and in order "
            f"(only {kept} match); entries may only be appended",
        )


def _check_substrate_frozen(u: _Update) -> None:
    for relpath in sorted(u.proposed.standing_recipe.files):
        if u.spec.is_frozen(relpath):
            u.breach("substrate_frozen", f"the standing recipe writes {relpath}, a frozen path of the substrate")
        elif not u.spec.is_editable(relpath):
            u.breach(
                "substrate_frozen",
                f"the standing recipe writes {relpath}, which the substrate does not declare editable",
            )


RETRUST_MIN_TRANSFERS = 2  # rule 2: transferring dev gains an untrusted domain needs before it is trusted again


def transferred_gains(cal: DomainCalibration | None) -> int:
    """Candidates whose dev gain on the domain cleared its noise band and whose external gain cleared its band."""
    return cal.dev_gain_above_noise - cal.external_flat_among_them if cal else 0


def may_trust_again(cal: DomainCalibration | None) -> bool:
    """Rule 2's condition for an untrusted domain to be trusted again: no longer flagged, and gains transferring."""
    return cal is not None and not cal.decoupled and transferred_gains(cal) >= RETRUST_MIN_TRANSFERS


def _check_gap_calibration(u: _Update) -> None:
    prev_w, new_w = u.previous.objective.domain_weights, u.proposed.objective.domain_weights
    per_domain = {c.domain: c for c in u.evidence.calibration.per_domain}
    for domain in sorted(set(u.previous.objective.untrusted_domains) - set(u.proposed.objective.untrusted_domains)):
        if not may_trust_again(per_domain.get(domain)):
            u.breach(
                "gap_calibration",
                f"the proposed objective trusts dev domain {domain!r} again, but the evidence shows "
                f"{transferred_gains(per_domain.get(domain))} candidate(s) whose dev gain on it reached the external "
                f"target (at least {RETRUST_MIN_TRANSFERS} needed, and the domain must no longer be flagged)",
            )
    for domain in u.evidence.calibration.decoupled_domains:
        untrusted = domain in u.proposed.objective.untrusted_domains
        lowered = new_w.get(domain, 1.0) < prev_w.get(domain, 1.0)
        if not (untrusted or lowered):
            u.breach(
                "gap_calibration",
                f"the evidence flags dev domain {domain!r} as a decoupled proxy, but the proposed objective neither "
                "lists it as untrusted nor lowers its weight",
            )


def _check_rotation(u: _Update) -> None:
    n = u.constitution.rotate_after_rounds_without_external_gain
    progress = stats.external_progress(u.history, u.sign, u.previous.noise.external_margin())
    if u.proposed.rounds_without_external_gain < progress.rounds_without_gain:
        u.breach(
            "axis_rotation",
            f"the policy records {u.proposed.rounds_without_external_gain} round(s) without external gain; "
            f"the manifests show {progress.rounds_without_gain}",
        )
    if progress.rounds_without_gain < n or u.frozen:
        return
    plateau = progress.plateau_rounds[-n:]
    explored = stats.categories_explored(u.history, plateau)
    active = {a.category for a in u.proposed.active_axes()}
    if active - explored:
        return
    others = sorted(set(u.spec.search.categories()) - explored)
    rounds = ", ".join(str(r) for r in plateau)
    power = u.evidence.calibration.external_power
    if power is not None and power.resolves is False:
        u.notes.append(
            f"axis_rotation: {progress.rounds_without_gain} rounds without external gain (rounds {rounds}), but the "
            f"external split could not have resolved a gain of the size tested, so rotation is not required: "
            f"{power.note}"
        )
        return
    if not others:
        u.notes.append(
            f"axis_rotation: {progress.rounds_without_gain} rounds without external gain, but every axis category "
            f"({', '.join(sorted(explored)) or 'none'}) was explored in rounds {rounds}; no other category exists, "
            "so rotation is not required"
        )
        return
    u.breach(
        "axis_rotation",
        f"{progress.rounds_without_gain} measured rounds without external gain (rounds {rounds} explored "
        f"{', '.join(sorted(explored))}); the active axes must include another category: {', '.join(others)}",
    )


# What a policy learns; a frozen (search-baseline) policy keeps every one of them from round to round.
LEARNED_FIELDS = frozenset(
    {"standing_recipe", "axes", "dead_ends", "objective", "external_plan", "replicate", "combine", "asks"}
)


def _check_frozen(u: _Update) -> None:
    changed = sorted(name for name in LEARNED_FIELDS if getattr(u.previous, name) != getattr(u.proposed, name))
    if changed:
        u.breach(
            "frozen_baseline",
            f"a search baseline's policy (meta agent `none`) may change only its measurements; it changed "
            f"{', '.join(changed)}",
        )


def _check_promotion(u: _Update) -> None:
    if u.proposed.noise.k < u.constitution.min_k:
        u.breach("promotion_threshold", f"noise.k = {u.proposed.noise.k:g} is below the constitution's min_k")
    if not is_promotion(u.previous, u.proposed):
        return
    source = u.proposed.standing_recipe.source
    if source is None:
        u.breach("promotion_threshold", "the standing recipe changed without naming the candidate it came from")
        return
    for breach in promotion_refusals(
        source,
        previous=u.previous,
        evidence=u.evidence,
        constitution=u.constitution,
        spec=u.spec,
        history=u.history,
    ):
        u.breaches.append(breach)


def promotion_refusals(
    source: str,
    *,
    previous: Policy,
    evidence: Evidence,
    constitution: Constitution,
    spec: SubstrateSpec,
    history: Sequence[Manifest],
) -> list[RuleBreach]:
    """Why promoting `source` (a candidate id) would break rules 1 and 6; empty when it may be promoted."""
    out: list[RuleBreach] = []
    sign = spec.metric.sign
    gains = stats.candidate_gains(history, sign)
    replicates = [m for m in history if m.role == "replicate" and m.replicate_of == source]
    if constitution.promotion_requires_gain_above_threshold:
        out += _gain_refusals(source, gains, replicates, previous, evidence)
    if constitution.external_authoritative:
        out += _external_refusals(source, replicates, previous, history, sign)
    return out


def _gain_refusals(
    source: str, gains: dict[str, float], replicates: list[Manifest], previous: Policy, evidence: Evidence
) -> list[RuleBreach]:
    threshold = evidence.calibration.dev_threshold
    if threshold is None:
        return [RuleBreach(rule="promotion_threshold", reason="no noise threshold is known, so no gain can clear it")]
    gain = gains.get(source)
    if gain is None:
        return [RuleBreach(rule="promotion_threshold", reason=f"{source} has no measured gain over its anchor")]
    rep_gains = [gains[m.candidate_id] for m in replicates if m.candidate_id in gains]
    if rep_gains:
        runs = 1 + len(rep_gains)
        mean = (gain + sum(rep_gains)) / runs
        required = stats.threshold_for_runs(threshold, runs)
        if mean <= required:
            return [
                RuleBreach(
                    rule="promotion_threshold",
                    reason=f"{source}'s gain {gain:+.4f} and its replicates' "
                    f"{', '.join(f'{g:+.4f}' for g in rep_gains)} average {mean:+.4f}, "
                    f"not above the threshold for a mean of {runs} runs {required:.4f} ({threshold:.4f}/√{runs})",
                )
            ]
        return []
    if gain <= threshold:
        return [
            RuleBreach(
                rule="promotion_threshold",
                reason=f"{source}'s gain {gain:+.4f} is not above the noise threshold {threshold:.4f}",
            )
        ]
    if gain <= threshold * (1 + previous.noise.replicate_margin):
        return [
            RuleBreach(
                rule="promotion_threshold",
                reason=f"{source}'s gain {gain:+.4f} is within the replicate margin of the threshold "
                f"{threshold:.4f}; a replicate must confirm it first",
            )
        ]
    return []


def _external_refusals(
    source: str, replicates: list[Manifest], previous: Policy, history: Sequence[Manifest], sign: float
) -> list[RuleBreach]:
    """Rule 1: the runs of the recipe that the external target scored must not, on average, score below their
    rounds' anchors (each run against its own round's: a replicate may run on a newer standing recipe), nor below
    the best external score known by more than the external margin (k·external sd): the best known is the
    maximum of many noisy scores, so a raw comparison with it would veto real gains for the luck of an earlier
    draw."""
    runs = [m for m in history if m.candidate_id == source] + replicates
    scored = [m for m in runs if m.external is not None]
    if not scored:
        return []  # the external target has not spoken on this recipe
    external = sum(m.external.score for m in scored if m.external) / len(scored)
    out = []
    against = [(m, ref) for m in scored if (ref := external_reference(history, m.round)) is not None]
    if against:
        gain = sum(sign * (m.external.score - ref.external.score) for m, ref in against if m.external and ref.external)
        gain /= len(against)
        anchors = ", ".join(f"{ref.external.score:.4f}" for _, ref in against if ref.external)
        if gain <= 0:
            out.append(
                RuleBreach(
                    rule="external_authoritative",
                    reason=f"{source} scores {external:.4f} on the external target, no better than its round's anchor "
                    f"({anchors}): promoting it would follow dev against the external target",
                )
            )
    margin = previous.noise.external_margin()
    if previous.best_external is not None and sign * (external - previous.best_external) < -margin:
        out.append(
            RuleBreach(
                rule="external_authoritative",
                reason=f"{source} scores {external:.4f} on the external target, worse than the best known "
                f"{previous.best_external:.4f} ({previous.best_external_source}) by more than the external margin "
                f"{margin:.4f}",
            )
        )
    return out


def _run_checks(
    previous: Policy,
    proposed: Policy,
    evidence: Evidence,
    constitution: Constitution,
    spec: SubstrateSpec,
    history: Sequence[Manifest],
    frozen: bool = False,
) -> _Update:
    u = _Update(previous, proposed, evidence, constitution, spec, history, frozen)
    _check_policy_chain(u)
    if constitution.dead_ends_append_only:
        _check_dead_ends(u)
    if constitution.standing_recipe_editable_only:
        _check_substrate_frozen(u)
    if frozen:  # the rules that make a policy act on its evidence do not apply to one that must not learn
        _check_frozen(u)
    elif constitution.decoupled_domains_must_be_untrusted:
        _check_gap_calibration(u)
    _check_rotation(u)
    if not frozen:
        _check_promotion(u)
    return u


def check_policy_update(
    *,
    previous: Policy,
    proposed: Policy,
    evidence: Evidence,
    constitution: Constitution,
    spec: SubstrateSpec,
    history: list[Manifest],
    frozen: bool = False,
) -> list[RuleBreach]:
    """Every rule the proposed policy breaks (empty when it may replace `previous`); `frozen` for the policy of a
    search baseline (meta agent `none`)."""
    return _run_checks(previous, proposed, evidence, constitution, spec, history, frozen).breaches


def enforce(
    *,
    previous: Policy,
    proposed: Policy,
    evidence: Evidence,
    constitution: Constitution,
    spec: SubstrateSpec,
    history: list[Manifest],
    frozen: bool = False,
) -> list[str]:
    """Refuse a violating update (ConstitutionViolation listing every breach); return notes on rules that allowed
    the update only because they could not apply (e.g. no other axis category to rotate to). `frozen`: the policy
    of a search baseline (meta agent `none`), which may change only its measurements."""
    u = _run_checks(previous, proposed, evidence, constitution, spec, history, frozen)
    if u.breaches:
        raise ConstitutionViolation(
            f"the proposed policy for round {proposed.round} breaks the constitution:\n  "
            + "\n  ".join(b.render() for b in u.breaches),
            fix="the meta agent must propose a policy that keeps every rule; the previous policy stays in force",
        )
    return u.notes
