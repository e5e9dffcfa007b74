"""The meta-agent protocol: rewrite the rolling policy from the round evidence, under the frozen constitution.

Backends: the deterministic rule agent (meta_rules.py) and, later, an LLM whose structured output is validated the
same way. The caller runs `constitution.enforce` on every proposal; a meta agent never writes files: it returns
the policy and, for a model, the record of what it did, and the campaign store writes both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from evotrain.policy.constitution import Constitution
from evotrain.records.evidence import Evidence
from evotrain.records.manifest import Manifest
from evotrain.records.meta import MetaRecord
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SubstrateSpec


@dataclass(frozen=True)
class Proposal:
    """A meta agent's answer: the next policy, and what a model-backed agent did to reach it (`meta.json`)."""

    policy: Policy
    record: MetaRecord | None = None


@dataclass(frozen=True)
class MetaInputs:
    """What a meta agent reads: the policy in force, the round's evidence, the substrate's spec, every manifest of
    the campaign so far (the evidence round's included) and the frozen constitution."""

    policy: Policy
    evidence: Evidence
    spec: SubstrateSpec
    history: list[Manifest]
    constitution: Constitution


class MetaAgent(Protocol):
    name: str

    def propose(self, inputs: MetaInputs) -> Proposal:
        """The policy for round `inputs.policy.round + 1` (parent_sha256 = the policy's sha256()), with every
        change in its changelog."""
        ...
