"""`--meta none`: a meta agent that keeps the policy as it is, for search baselines that must not learn.

Under it a campaign is a pure dev-maximiser: no promotion (every fork starts from the substrate's recipe, or the
standing recipe the campaign began with), no reweighting, no dead ends, no axis retirement, and the same
external submission plan every round. What it does write is bookkeeping the constitution checks, not learning:
the round number, the parent hash, the measurements (noise band, external best and plateau count, through
`policy.measurements` as the other agents do) and the changelog.
"""

from __future__ import annotations

from evotrain.policy.measurements import measure
from evotrain.policy.meta_protocol import MetaInputs, Proposal
from evotrain.records.policy import Provenance

KEPT = "meta agent `none` keeps the policy unchanged (a search baseline: the loop learns nothing between rounds)"


class KeepPolicyMetaAgent:
    name = "none"

    def propose(self, inputs: MetaInputs) -> Proposal:
        policy, evidence, spec, history = inputs.policy, inputs.evidence, inputs.spec, inputs.history
        nxt = policy.model_copy(deep=True)
        nxt.round = policy.round + 1
        nxt.parent_sha256 = policy.sha256()
        nxt.changelog = []
        measure(policy, evidence, spec, history).apply(nxt)
        nxt.changelog.append(Provenance(round=policy.round, action="kept", reason=KEPT))
        return Proposal(nxt)
