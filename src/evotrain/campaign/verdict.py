"""What a campaign did, in a few lines: the external score before and after, what it promoted, what it stopped
trusting and why — read from the campaign's files alone (manifests and policies).

"Before" is the substrate's recipe as the first round's anchor scored on the external target; "after" is the
final pick (`final_pick`: the best external score the target returned). A leaderboard's held-out (private)
scores are never in the campaign; a caller that owns the board may pass them in to show beside the public ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from evotrain.campaign.final_pick import FinalPick, final_pick
from evotrain.campaign.store import CampaignStore
from evotrain.records.manifest import Manifest

TRUST_ACTIONS = ("untrust_domain", "objective_mode", "retrust_domain")


@dataclass(frozen=True)
class Decision:
    round: int  # the round whose evidence led to it
    action: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    rounds: int  # rounds with a policy written after them
    substrate: Manifest | None  # the first round's anchor: the substrate's recipe
    pick: FinalPick | None
    promotions: list[Decision]
    trust: list[Decision]  # domains untrusted or trusted again, objective changes
    standing_source: str | None  # the final standing recipe's source candidate (None: the substrate's recipe)
    standing_changes: list[str]
    private: Mapping[str, float] = field(default_factory=dict)  # submission id -> held-out score, when known

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


def campaign_verdict(store: CampaignStore, *, sign: float = 1.0, private: Mapping[str, float] | None = None) -> Verdict:
    """The verdict of every round that has closed (its policy for the next round written)."""
    closed = 0
    while store.policy_or_none(closed + 2) is not None:
        closed += 1
    manifests = store.manifests(up_to_round=closed) if closed else []
    anchors = sorted((m for m in manifests if m.role == "anchor"), key=lambda m: (m.round, m.candidate_id))
    promotions: list[Decision] = []
    trust: list[Decision] = []
    for round_no in range(2, closed + 2):
        for entry in store.policy(round_no).changelog:
            decision = Decision(entry.round, entry.action, entry.reason)
            if entry.action == "promote":
                promotions.append(decision)
            elif entry.action in TRUST_ACTIONS:
                trust.append(decision)
    final = store.policy_or_none(closed + 1)
    standing = final.standing_recipe if final else None
    return Verdict(
        rounds=closed,
        substrate=anchors[0] if anchors and anchors[0].round == 1 else None,
        pick=final_pick(manifests, sign=sign),
        promotions=promotions,
        trust=trust,
        standing_source=standing.source if standing else None,
        standing_changes=[c.describe() for c in standing.changes] if standing else [],
        private=dict(private or {}),
    )
