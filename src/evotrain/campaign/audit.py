"""`evotrain audit`: re-verify everything a campaign claims — hashes, manifests, evidence and the policy chain."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from evotrain.campaign.init import open_campaign, verify_constitution, verify_substrate
from evotrain.campaign.store import CampaignStore
from evotrain.errors import ConstitutionViolation, EvotrainError
from evotrain.fileio import hash_file
from evotrain.policy.constitution import Constitution
from evotrain.policy.constitution_checks import enforce
from evotrain.policy.meta_none import KeepPolicyMetaAgent
from evotrain.records.evaluation import read_eval_report
from evotrain.records.events import EvidenceWritten, Planned, PolicyWritten, RoundClosed, RoundEvent
from evotrain.records.evidence import SECTIONS, Evidence
from evotrain.records.layout import CampaignPaths, CandidatePaths, RoundPaths
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Policy
from evotrain.substrate.spec import SubstrateSpec
from evotrain.trial.trace import Trace


def audit_campaign(run_dir: Path) -> list[str]:
    """Every problem found, as a sentence naming the file; an empty list means the campaign is intact."""
    paths, config = open_campaign(run_dir)
    store = CampaignStore(paths)
    problems: list[str] = []
    try:
        constitution = verify_constitution(paths, config)
        spec, _ = verify_substrate(paths, config)
    except EvotrainError as exc:
        return [exc.render()]
    previous: Policy | None = None
    history: list[Manifest] = []
    for round_paths in paths.rounds():
        policy = _load_policy(store, round_paths, problems)
        if policy is None:
            continue
        if previous is not None and policy.parent_sha256 != previous.sha256():
            problems.append(f"{round_paths.policy_json}: parent_sha256 does not match the previous round's policy")
        events = store.events(round_paths.number)
        planned = [e for e in events if isinstance(e, Planned)]
        if planned and planned[0].policy_sha256 != policy.sha256():
            problems.append(f"{round_paths.policy_json}: changed after the round was planned")
        manifests = [m for cp in round_paths.candidates() if (m := _audit_manifest(paths, cp, policy, problems))]
        history.extend(manifests)
        if any(isinstance(e, RoundClosed) for e in events):
            for cp in round_paths.candidates():
                _audit_closed_trace(cp, problems)
            evidence = _audit_evidence(store, round_paths, events, problems)
            next_round = paths.round(round_paths.number + 1)
            next_policy = _load_policy(store, next_round, problems)
            written = [e for e in events if isinstance(e, PolicyWritten)]
            frozen = bool(written) and written[-1].meta == KeepPolicyMetaAgent.name
            if not written:
                problems.append(f"{round_paths.trace}: no policy_written event for a closed round (a line was deleted)")
            elif next_policy is not None and next_policy.sha256() != written[-1].sha256:
                problems.append(f"{next_round.policy_json}: does not match the hash recorded when it was written")
            if evidence is not None and next_policy is not None:
                transition = (policy, next_policy, evidence, constitution, spec, history, frozen)
                _audit_transition(*transition, next_round, problems)
        previous = policy
    return problems


def _load_policy(store: CampaignStore, round_paths: RoundPaths, problems: list[str]) -> Policy | None:
    try:
        return store.read_policy(round_paths.number)
    except FileNotFoundError:
        if round_paths.candidates():
            problems.append(f"{round_paths.policy_json}: missing")
        return None
    except ValidationError as exc:
        problems.append(f"{round_paths.policy_json}: not a valid policy ({exc.error_count()} errors)")
        return None


def _audit_manifest(paths: CampaignPaths, cp: CandidatePaths, policy: Policy, problems: list[str]) -> Manifest | None:
    if not cp.manifest.exists():
        return None
    written = Trace(cp.trace).last("manifest_written")
    if written is None:
        problems.append(f"{cp.trace}: no manifest_written event for the candidate's manifest (a line was deleted)")
    elif written.data.get("sha256") != hash_file(cp.manifest):
        problems.append(f"{cp.manifest}: does not match the hash its trace recorded when the harness wrote it")
    try:
        manifest = Manifest.model_validate_json(cp.manifest.read_text())
    except ValidationError as exc:
        problems.append(f"{cp.manifest}: not a valid manifest ({exc.error_count()} errors)")
        return None
    if manifest.policy_sha256 != policy.sha256():
        problems.append(f"{cp.manifest}: names a policy other than its round's")
    for ckpt in manifest.checkpoints:
        report = paths.root / ckpt.report
        try:
            domains = read_eval_report(report).domains
        except (FileNotFoundError, UnicodeDecodeError, ValidationError):
            problems.append(f"{report}: evaluation report missing or unreadable")
            continue
        for domain, score in ckpt.domains.items():
            if domain not in domains or abs(domains[domain].score - score.score) > 1e-12:
                problems.append(f"{cp.manifest}: {ckpt.checkpoint} {domain} score differs from {report}")
    return manifest


def _audit_closed_trace(cp: CandidatePaths, problems: list[str]) -> None:
    """In a closed round every step a trace started has finished (resuming finishes or re-runs it): a start with no
    finish means a `step_finished` line was deleted."""
    for job in Trace(cp.trace).started_unfinished():
        problems.append(f"{cp.trace}: step {job.key} started and never finished in a closed round (a line was deleted)")


def _audit_evidence(
    store: CampaignStore, round_paths: RoundPaths, events: list[RoundEvent], problems: list[str]
) -> Evidence | None:
    written = [e for e in events if isinstance(e, EvidenceWritten)]
    if not round_paths.evidence_json.exists():
        problems.append(f"{round_paths.evidence_json}: missing for a closed round")
        return None
    if not written:
        problems.append(f"{round_paths.trace}: no evidence_written event for a closed round (a line was deleted)")
    elif written[-1].sha256 != hash_file(round_paths.evidence_json):
        problems.append(f"{round_paths.evidence_json}: does not match the hash recorded when it was written")
    try:
        evidence = store.read_evidence(round_paths.number)
    except ValidationError as exc:
        problems.append(f"{round_paths.evidence_json}: not valid evidence ({exc.error_count()} errors)")
        return None
    headings = [line[3:].strip() for line in round_paths.evidence_md.read_text().splitlines() if line.startswith("## ")]
    if [h.split()[0].lower() for h in headings] != list(SECTIONS):
        problems.append(f"{round_paths.evidence_md}: sections are {headings}, expected {list(SECTIONS)} in order")
    return evidence


def _audit_transition(
    policy: Policy,
    next_policy: Policy,
    evidence: Evidence,
    constitution: Constitution,
    spec: SubstrateSpec,
    history: list[Manifest],
    frozen: bool,
    next_round: RoundPaths,
    problems: list[str],
) -> None:
    try:
        enforce(
            previous=policy,
            proposed=next_policy,
            evidence=evidence,
            constitution=constitution,
            spec=spec,
            history=history,
            frozen=frozen,
        )
    except ConstitutionViolation as exc:
        problems.append(f"{next_round.policy_json}: {exc.message}")
