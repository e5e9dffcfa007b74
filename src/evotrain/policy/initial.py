"""Round 1's policy: every declared axis active, every metric domain weighted 1, k = 2, nothing promoted yet."""

from __future__ import annotations

from evotrain.records.policy import AxisState, NoiseRules, Policy, Provenance, SelectionObjective
from evotrain.substrate.spec import SubstrateSpec

DECLARED = Provenance(round=0, action="declared", reason="round 0: declared by the substrate")


def initial_policy(spec: SubstrateSpec) -> Policy:
    axes = [
        AxisState(name=name, category=axis.category, status="active", provenance=[DECLARED])
        for name, axis in spec.search.axes.items()
    ]
    objective = SelectionObjective(
        mode="optimize_dev",
        domain_weights={d: 1.0 for d in spec.metric.domains},
        provenance=[Provenance(round=0, action="set", reason="round 0: every metric domain weighted 1.0")],
    )
    noise = NoiseRules(
        k=2.0,
        provenance=[Provenance(round=0, action="set", reason="round 0: k = 2; the band is measured from anchors")],
    )
    return Policy(
        round=1,
        axes=axes,
        noise=noise,
        objective=objective,
        asks=["explore your assigned axis with one clear, single-variable change and say why you expect it to help"],
        changelog=[Provenance(round=0, action="initial", reason="initial policy from the substrate's search space")],
    )
