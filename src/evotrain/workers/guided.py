"""The guided offline worker: model-guided whole-configuration proposals beside one-axis probes.

A round's worker slots (in plan order) are split in two. The first `probe_share` of them are the mutator's
one-axis probes: one clear change on the slot's axis from the standing recipe, which is what isolates an axis (a
dead end is charged only to such a change, and the axis effects stay attributable). The rest are proposals
from Optuna TPE over the whole declared space, its study rebuilt from every earlier trial of the campaign (probes
included), which moves several knobs at once toward where the measured trials point. A promoted proposal becomes
the standing recipe the next round's probes start from, so the two halves feed each other.

Why both: on an additive landscape one-knob probes gated by the noise reach two or three knobs in 28 trials,
while whole-configuration samples reach every knob but never isolate one (docs/benchmarks.md measures both). What
it costs, measured there: the decoupling flag fires less often, because a promoted proposal can carry a proxy
trap's knob into the standing recipe before the trap shows, and the anchor then hides it.
Deterministic like its parts: the mutator's draws and the sampler's seed are handed out by the loop.
"""

from __future__ import annotations

import math

from evotrain.workers.mutator import MutatorWorker
from evotrain.workers.optuna_worker import OptunaWorker
from evotrain.workers.protocol import WorkerRequest, WorkerResult

PROBE_SHARE = 0.5


class GuidedWorker:
    """`--agent guided`: the mutator's one-axis probes on the first half of a round's worker slots, Optuna TPE
    proposals on the rest."""

    name = "guided"

    def __init__(self, probe_share: float = PROBE_SHARE) -> None:
        if not 0.0 <= probe_share <= 1.0:
            raise ValueError(f"probe_share must lie in [0, 1], got {probe_share}")
        self.probe_share = probe_share
        self.mutator = MutatorWorker()
        self.search = OptunaWorker("tpe")

    def probes(self, slots: int) -> int:
        """How many of a round's `slots` worker slots are one-axis probes (at least one while there is a slot)."""
        if slots <= 0:
            return 0
        return max(1, min(slots, math.ceil(slots * self.probe_share)))

    def propose(self, request: WorkerRequest) -> WorkerResult:
        slots = request.round_candidates
        if request.candidate_id not in slots:  # outside a planned round (a scratch call): a probe
            return self.mutator.propose(request)
        n_probes = self.probes(len(slots))
        if slots.index(request.candidate_id) < n_probes:
            return self.mutator.propose(request)
        # The search sees only its own slots, so its k-th slot gets the k-th ask of the round's study.
        return self.search.propose(request.model_copy(update={"round_candidates": slots[n_probes:]}))
