"""What a policy carries that no meta agent decides: the noise rules measured from the evidence's calibration and
the anchors, and the external best and plateau measured from the history. Both meta agents take them from here,
with the changelog entries (`noise`, `external`) that say what changed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from evotrain.evidence import stats
from evotrain.records.evidence import Evidence
from evotrain.records.manifest import Manifest
from evotrain.records.policy import NoiseRules, Policy, Provenance
from evotrain.substrate.spec import SubstrateSpec


@dataclass
class Measurements:
    noise: NoiseRules
    best_external: float | None
    best_external_source: str | None
    rounds_without_external_gain: int
    changelog: list[Provenance] = field(default_factory=list)

    def apply(self, policy: Policy) -> None:
        """Write the measurements into `policy` and append their changelog entries."""
        policy.noise = self.noise.model_copy(deep=True)
        policy.best_external = self.best_external
        policy.best_external_source = self.best_external_source
        policy.rounds_without_external_gain = self.rounds_without_external_gain
        policy.changelog.extend(self.changelog)


def measure(previous: Policy, evidence: Evidence, spec: SubstrateSpec, history: Sequence[Manifest]) -> Measurements:
    """The measurements for the policy that follows `previous` (`history` holds the evidence round's manifests)."""
    changelog: list[Provenance] = []

    def log(action: str, reason: str) -> Provenance:
        entry = Provenance(round=evidence.round, action=action, reason=reason)
        changelog.append(entry)
        return entry

    noise = _noise(previous.noise, evidence, history, log)
    progress = stats.external_progress(history, spec.metric.sign, previous.noise.external_margin())
    if progress.best != previous.best_external or progress.best_source != previous.best_external_source:
        log("external", f"best external score {progress.best} from {progress.best_source}")
    if progress.rounds_without_gain != previous.rounds_without_external_gain:
        log(
            "external",
            f"{progress.rounds_without_gain} measured round(s) without external improvement"
            + (f" (rounds {', '.join(map(str, progress.plateau_rounds))})" if progress.plateau_rounds else ""),
        )
    return Measurements(
        noise=noise,
        best_external=progress.best,
        best_external_source=progress.best_source,
        rounds_without_external_gain=progress.rounds_without_gain,
        changelog=changelog,
    )


def _noise(
    noise: NoiseRules, evidence: Evidence, history: Sequence[Manifest], log: Callable[[str, str], Provenance]
) -> NoiseRules:
    cal = evidence.calibration
    anchors = sum(1 for m in history if m.role == "anchor" and m.ok)
    new = noise.model_copy(
        update={
            "seed_sd": cal.seed_sd,
            "item_sd": cal.item_sd,
            "band": cal.dev_noise_band,
            "threshold": noise.k * cal.dev_noise_band if cal.dev_noise_band is not None else None,
            "external_sd": cal.external_noise_band if cal.external_noise_source != "policy default" else None,
            "anchor_observations": anchors,
        }
    )
    if new.model_dump(exclude={"provenance"}) == noise.model_dump(exclude={"provenance"}):
        return noise
    band = "unknown" if new.band is None else f"{new.band:.4f}"
    threshold = "unknown" if new.threshold is None else f"{new.threshold:.4f}"
    entry = log(
        "noise",
        f"band {band} → threshold k·band = {threshold} from {anchors} anchor run(s): {cal.noise_note}; "
        f"external sd from {cal.external_noise_source}",
    )
    new.provenance = [*noise.provenance, entry]
    return new
