"""What `run` checks before it plans on closed rounds: each file it reads from them still has the hash its trace
recorded when it was written, and the pending policy keeps the constitution, before a single step runs.

`audit` re-verifies everything and lists every problem; this stops at the first, naming the file that changed.
"""

from __future__ import annotations

from evotrain.campaign.store import CampaignStore
from evotrain.errors import ConstitutionViolation, IntegrityError
from evotrain.fileio import hash_file
from evotrain.policy.constitution import Constitution
from evotrain.policy.constitution_checks import enforce
from evotrain.policy.meta_none import KeepPolicyMetaAgent
from evotrain.records.events import EvidenceWritten, Planned, PolicyWritten, RoundEvent
from evotrain.records.layout import CandidatePaths, RoundPaths
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SubstrateSpec
from evotrain.trial.trace import Trace

RESTORE = "restore the file (`evotrain audit RUN` lists every change); a closed round's files are never rewritten"


def verify_closed_round(store: CampaignStore, round_no: int) -> None:
    """The round's manifests, evidence and the policy it wrote are the ones its traces recorded."""
    round_paths = store.paths.round(round_no)
    events = store.events(round_no)
    planned = next((e for e in events if isinstance(e, Planned)), None)
    if planned is not None and planned.policy_sha256 != store.policy(round_no).sha256():
        raise IntegrityError("changed after the round was planned", path=round_paths.policy_json, fix=RESTORE)
    for cp in round_paths.candidates():
        _verify_manifest(cp)
    _verify_evidence(round_paths, events)
    written = [e for e in events if isinstance(e, PolicyWritten)]
    if not written:
        raise IntegrityError(
            "a closed round with no policy_written event (a line was deleted)", path=round_paths.trace, fix=RESTORE
        )
    next_policy = store.policy(round_no + 1)
    if next_policy.sha256() != written[-1].sha256:
        raise IntegrityError(
            f"changed since round {round_no} wrote it (its hash differs from round.jsonl's policy_written)",
            path=store.paths.round(round_no + 1).policy_json,
            fix=RESTORE,
        )


def _verify_manifest(cp: CandidatePaths) -> None:
    written = Trace(cp.trace).last("manifest_written")
    if written is None:
        raise IntegrityError("no manifest_written event for a closed round's candidate", path=cp.trace, fix=RESTORE)
    if not cp.manifest.exists():
        raise IntegrityError("missing for a closed round", path=cp.manifest, fix=RESTORE)
    if written.data.get("sha256") != hash_file(cp.manifest):
        raise IntegrityError(
            "changed since the harness wrote it (its hash differs from the one trace.jsonl recorded)",
            path=cp.manifest,
            fix=RESTORE,
        )


def _verify_evidence(round_paths: RoundPaths, events: list[RoundEvent]) -> None:
    written = [e for e in events if isinstance(e, EvidenceWritten)]
    if not written:
        raise IntegrityError(
            "a closed round with no evidence_written event (a line was deleted)", path=round_paths.trace, fix=RESTORE
        )
    if not round_paths.evidence_json.exists():
        raise IntegrityError("missing for a closed round", path=round_paths.evidence_json, fix=RESTORE)
    if written[-1].sha256 != hash_file(round_paths.evidence_json):
        raise IntegrityError(
            "changed since it was written (its hash differs from round.jsonl's evidence_written)",
            path=round_paths.evidence_json,
            fix=RESTORE,
        )


def verify_pending_policy(
    store: CampaignStore, round_no: int, *, constitution: Constitution, spec: SubstrateSpec
) -> Policy:
    """The policy round `round_no` runs under: for round 2 on, the previous round's transition to it keeps the
    constitution (as `audit` checks), and the round's plan, when there is one, was made under it."""
    policy = store.policy(round_no)
    planned = next((e for e in store.events(round_no) if isinstance(e, Planned)), None)
    if planned is not None and planned.policy_sha256 != policy.sha256():
        raise IntegrityError(
            "changed after the round was planned", path=store.paths.round(round_no).policy_json, fix=RESTORE
        )
    if round_no == 1:
        return policy
    previous = store.policy(round_no - 1)
    written = [e for e in store.events(round_no - 1) if isinstance(e, PolicyWritten)]
    try:
        enforce(
            previous=previous,
            proposed=policy,
            evidence=store.read_evidence(round_no - 1),
            constitution=constitution,
            spec=spec,
            history=store.manifests(up_to_round=round_no - 1),
            frozen=bool(written) and written[-1].meta == KeepPolicyMetaAgent.name,
        )
    except ConstitutionViolation as exc:
        raise ConstitutionViolation(
            exc.message.replace("the proposed policy", "the policy", 1),
            path=store.paths.round(round_no).policy_json,
            fix=f"restore the file round {round_no - 1} wrote; the constitution is frozen for the whole campaign",
        ) from None
    return policy
