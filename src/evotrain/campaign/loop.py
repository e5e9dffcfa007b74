"""The round loop: plan → fork → worker → violations → trial → manifest → external → evidence → policy.

Every step leaves an event in an fsync'd trace before the loop moves on, so `evotrain run RUN` after a kill at any
instant resumes: finished steps are not rerun, unfinished ones restart, and a round never closes twice.
"""

from __future__ import annotations

import concurrent.futures
import importlib.resources
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from evotrain.campaign.config import CampaignConfig
from evotrain.campaign.init import open_campaign, verify_constitution, verify_substrate
from evotrain.campaign.plan import plan_round
from evotrain.campaign.store import CampaignStore
from evotrain.campaign.verify import verify_closed_round, verify_pending_policy
from evotrain.errors import ConfigError, EvotrainError, IntegrityError
from evotrain.evidence.collector import collect_evidence
from evotrain.executors.local import LocalExecutor
from evotrain.executors.protocol import Executor
from evotrain.external.factory import build_target
from evotrain.external.protocol import ExternalTarget
from evotrain.fileio import atomic_write_json, hash_file
from evotrain.policy.constitution import Constitution
from evotrain.policy.constitution_checks import enforce
from evotrain.policy.meta_none import KeepPolicyMetaAgent
from evotrain.policy.meta_protocol import MetaAgent, MetaInputs
from evotrain.policy.meta_rules import RuleMetaAgent
from evotrain.records.events import CandidatePlan, ExternalSkipped, Planned, PolicyWritten, RoundClosed
from evotrain.records.evidence import Evidence
from evotrain.records.ids import worker_seeds
from evotrain.records.layout import CampaignPaths, CandidatePaths, RoundPaths
from evotrain.records.manifest import Cost, ExternalResult, Failure, KnobChange, Manifest, read_manifest
from evotrain.records.policy import Policy, StandingRecipe
from evotrain.sandbox.diff import editable_files_changed, recipe_diff, recipe_files_or_problem
from evotrain.sandbox.fork import fork_sandbox, remove_sandbox
from evotrain.sandbox.knobs import knob_changes, knob_settings, knob_values, read_knob, write_knob
from evotrain.sandbox.violations import detect_violations
from evotrain.substrate.snapshot import SubstrateHashes
from evotrain.substrate.spec import SubstrateSpec
from evotrain.trial.harness import run_predict, run_trial_steps
from evotrain.trial.trace import Trace
from evotrain.workers.mutator import MutatorWorker
from evotrain.workers.protocol import Worker, WorkerRequest, WorkerResult


def worker_brief() -> str:
    return importlib.resources.files("evotrain").joinpath("assets/worker_brief.md").read_text()


class RunObserver(Protocol):
    """What a progress display hears from the loop (the CLI shows it with rich)."""

    def round_started(self, round_no: int, plans: list[CandidatePlan]) -> None: ...
    def candidate_stage(self, round_no: int, name: str, stage: str) -> None: ...
    def candidate_finished(self, round_no: int, manifest: Manifest) -> None: ...
    def round_closed(self, round_no: int, evidence: Evidence, next_policy: Policy) -> None: ...


class SilentObserver:
    def round_started(self, round_no: int, plans: list[CandidatePlan]) -> None:
        pass

    def candidate_stage(self, round_no: int, name: str, stage: str) -> None:
        pass

    def candidate_finished(self, round_no: int, manifest: Manifest) -> None:
        pass

    def round_closed(self, round_no: int, evidence: Evidence, next_policy: Policy) -> None:
        pass


@dataclass
class RoundContext:
    paths: CampaignPaths
    config: CampaignConfig
    spec: SubstrateSpec
    hashes: SubstrateHashes
    constitution: Constitution
    round: RoundPaths
    policy: Policy
    executor: Executor
    worker: Worker
    observer: RunObserver
    poll_interval: float
    history: list[Manifest] = field(default_factory=list)  # the manifests of the rounds before this one
    worker_candidates: list[str] = field(default_factory=list)  # this round's worker candidate ids, in plan order
    brief: str = field(default_factory=worker_brief)


class Campaign:
    def __init__(
        self,
        run_dir: Path,
        *,
        executor: Executor | None = None,
        worker: Worker | None = None,
        meta_agent: MetaAgent | None = None,
        external: ExternalTarget | None = None,
        observer: RunObserver | None = None,
        poll_interval: float = 0.1,
    ) -> None:
        self.paths, self.config = open_campaign(run_dir)
        self.store = CampaignStore(self.paths)
        self.executor: Executor = executor or LocalExecutor()
        self.worker: Worker = worker or MutatorWorker()
        self.meta_agent: MetaAgent = meta_agent or RuleMetaAgent()
        self.external = external if external is not None else self._external_from_config()
        self.observer: RunObserver = observer or SilentObserver()
        self.poll_interval = poll_interval

    def _external_from_config(self) -> ExternalTarget | None:
        return build_target(self.config.external) if self.config.external else None

    # ---- the loop -------------------------------------------------------------------------------------------
    def run(
        self,
        *,
        rounds: int,
        workers: int | None = None,
        parallel: int | None = None,
        keep_going: bool | None = None,
    ) -> list[Evidence]:
        """Run (or resume) until `rounds` rounds are closed in total; returns the evidence of rounds closed now.

        A round closed now in which no candidate succeeded stops the campaign (RoundFailed) unless `keep_going`
        (default: `[run] keep_going` in campaign.toml); the round stays closed, so a later run resumes after it.
        """
        workers = workers if workers is not None else self.config.run.workers
        parallel = parallel if parallel is not None else self.config.run.parallel
        check_run_counts(rounds=rounds, workers=workers, parallel=parallel)
        keep_going = self.config.run.keep_going if keep_going is None else keep_going
        closed: list[Evidence] = []
        with self.store.lock():
            for round_no in range(1, rounds + 1):
                round_paths = self.paths.round(round_no)
                if self.store.closed(round_no) is not None:
                    verify_closed_round(self.store, round_no)  # the next rounds plan on what it recorded
                    continue
                evidence = self._run_round(round_paths, workers=workers, parallel=parallel)
                closed.append(evidence)
                if not keep_going:
                    stop_if_nothing_succeeded(self.store, round_no)
        return closed

    def _run_round(self, round_paths: RoundPaths, *, workers: int, parallel: int) -> Evidence:
        constitution = verify_constitution(self.paths, self.config)
        spec, hashes = verify_substrate(self.paths, self.config)
        policy = verify_pending_policy(self.store, round_paths.number, constitution=constitution, spec=spec)
        ctx = RoundContext(
            paths=self.paths,
            config=self.config,
            spec=spec,
            hashes=hashes,
            constitution=constitution,
            round=round_paths,
            policy=policy,
            executor=self.executor,
            worker=self.worker,
            observer=self.observer,
            poll_interval=self.poll_interval,
            history=self.store.manifests(up_to_round=round_paths.number - 1),
        )
        plans = self._plan(ctx, workers)
        ctx.worker_candidates = [round_paths.candidate(p.name).candidate_id for p in plans if p.role == "worker"]
        self.observer.round_started(round_paths.number, plans)
        manifests = self._run_candidates(ctx, plans, parallel)
        manifests = self._submit_external(ctx, manifests, parallel)
        history = self.store.manifests(up_to_round=round_paths.number)
        evidence = collect_evidence(
            round_no=round_paths.number,
            policy=policy,
            spec=spec,
            round_manifests=manifests,
            history=history,
            campaign_root=self.paths.root,
        )
        self.store.write_evidence(evidence)

        proposal = self.meta_agent.propose(MetaInputs(policy, evidence, spec, history, constitution))
        if proposal.record is not None:
            self.store.write_meta_record(proposal.record)
        next_policy = proposal.policy
        enforce(
            previous=policy,
            proposed=next_policy,
            evidence=evidence,
            constitution=constitution,
            spec=spec,
            history=history,
            frozen=self.meta_agent.name == KeepPolicyMetaAgent.name,
        )
        self.store.write_policy(round_paths.number + 1, next_policy)
        self.store.append_event(
            round_paths.number, PolicyWritten(sha256=next_policy.sha256(), meta=self.meta_agent.name)
        )
        self.store.append_event(round_paths.number, RoundClosed())
        self.observer.round_closed(round_paths.number, evidence, next_policy)
        return evidence

    def _plan(self, ctx: RoundContext, workers: int) -> list[CandidatePlan]:
        """The first run of a round records its plan; a resumed run reads it back and never re-plans."""
        planned = self.store.planned(ctx.round.number)
        if planned is not None:
            return planned.plans
        plans = plan_round(ctx.policy, ctx.spec, ctx.round.number, workers, self.config.seed)
        self.store.append_event(ctx.round.number, Planned(plans=plans, policy_sha256=ctx.policy.sha256()))
        return plans

    def _run_candidates(self, ctx: RoundContext, plans: list[CandidatePlan], parallel: int) -> list[Manifest]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="candidate") as pool:
            futures = [pool.submit(run_candidate, ctx, plan) for plan in plans]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    # ---- external target ----------------------------------------------------------------------------------
    def _submit_external(self, ctx: RoundContext, manifests: list[Manifest], parallel: int) -> list[Manifest]:
        """Predict and submit the chosen candidates, `parallel` at a time (predict is a step like train)."""
        if self.external is None or ctx.spec.commands.predict is None:
            return manifests
        target = self.external
        chosen = choose_submissions(ctx, manifests)
        budget = self.config.external.budget if self.config.external else None
        used = count_submissions(self.paths)
        to_submit: dict[str, tuple[CandidatePaths, Manifest]] = {}
        for manifest in manifests:
            if manifest.candidate_id in chosen and manifest.external is None:
                cp = ctx.round.candidate(manifest.candidate_id.split("/", 1)[1])
                recorded = Trace(cp.trace).last("external_submitted")
                if recorded is None and budget is not None and used >= budget:
                    skipped = ExternalSkipped(candidate=manifest.candidate_id, reason="budget spent")
                    self.store.append_event(ctx.round.number, skipped)
                else:
                    to_submit[manifest.candidate_id] = (cp, manifest)
                    used += recorded is None
        if not to_submit:
            return manifests
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="submit") as pool:
            futures = {cid: pool.submit(submit_candidate, ctx, target, cp, m) for cid, (cp, m) in to_submit.items()}
            submitted = {cid: f.result() for cid, f in futures.items()}
        return [submitted.get(m.candidate_id, m) for m in manifests]


def check_run_counts(*, rounds: int, workers: int, parallel: int) -> None:
    """`run`'s counts, checked before anything is written: a round needs the anchor and at least one worker."""
    for flag, value, least, why in (
        ("--rounds", rounds, 1, "the total number of rounds the campaign should have"),
        ("--workers", workers, 2, "a round needs the anchor and at least one worker"),
        ("--parallel", parallel, 1, "at least one candidate runs at a time"),
    ):
        if value < least:
            raise ConfigError(f"{flag} {value}: {why}", fix=f"pass {flag} {least} or more")


class RoundFailed(EvotrainError):
    """A round in which no candidate succeeded: the campaign stops rather than build on nothing."""


def stop_if_nothing_succeeded(store: CampaignStore, round_no: int) -> None:
    manifests = [m for m in store.manifests(up_to_round=round_no) if m.round == round_no]
    if any(m.ok for m in manifests):
        return
    first = next((m for m in manifests if m.failure is not None), None)
    cause = f" (first: {first.candidate_id} {first.failure.one_line()})" if first and first.failure else ""
    raise RoundFailed(
        f"round {round_no}: none of its {len(manifests)} candidates succeeded, so the campaign stops{cause}",
        path=store.paths.round(round_no).root,
        fix="fix the cause (`evotrain status` lists each failure; `evotrain check SUBSTRATE` tries a substrate), "
        "then `evotrain run` resumes with the next round; a broken substrate needs a new `evotrain init`; "
        "`--keep-going` (or [run] keep_going = true in campaign.toml) goes on past such rounds",
    )


def choose_submissions(ctx: RoundContext, manifests: list[Manifest]) -> set[str]:
    """The candidates the policy's selection objective ranks first, and the anchor every N rounds."""
    plan = ctx.policy.external_plan
    sign = ctx.spec.metric.sign
    ranked = sorted(
        (m for m in manifests if m.ok and m.role != "anchor" and m.selected is not None),
        key=lambda m: -sign * m.selected.objective if m.selected else 0.0,
    )
    chosen = {m.candidate_id for m in ranked[: plan.submit_top]}
    if plan.submit_anchor_every > 0 and (ctx.round.number - 1) % plan.submit_anchor_every == 0:
        chosen |= {m.candidate_id for m in manifests if m.role == "anchor" and m.ok}
    return chosen


def count_submissions(paths: CampaignPaths) -> int:
    return sum(
        1
        for round_paths in paths.rounds()
        for cp in round_paths.candidates()
        if Trace(cp.trace).last("external_submitted") is not None
    )


def submit_candidate(ctx: RoundContext, target: ExternalTarget, cp: CandidatePaths, manifest: Manifest) -> Manifest:
    trace = Trace(cp.trace)
    recorded = trace.last("external_submitted")
    if recorded is None:
        assert manifest.selected is not None
        ctx.observer.candidate_stage(ctx.round.number, cp.name, "predict")
        predictions = run_predict(
            candidate=cp,
            campaign_root=ctx.paths.root,
            spec=ctx.spec,
            checkpoint=manifest.selected.checkpoint,
            seed=manifest.seed,
            executor=ctx.executor,
            trace=trace,
        )
        if isinstance(predictions, Failure):
            trace.append("external_failed", reason=predictions.message)
            return manifest
        ctx.observer.candidate_stage(ctx.round.number, cp.name, "external")
        try:
            score = target.submit(manifest.candidate_id, predictions)
        except EvotrainError as exc:
            trace.append("external_failed", reason=exc.render())
            return manifest
        except ValidationError as exc:  # a target's score that is not a finite number
            trace.append("external_failed", reason=f"{target.name}: not a valid score: {exc.errors()[0]['msg']}")
            return manifest
        result = ExternalResult(
            target=target.name,
            checkpoint=manifest.selected.checkpoint,
            score=score.score,
            domains=score.domains,
            n=score.n,
            submission_id=score.submission_id,
            submitted_at=time.time(),
        )
        trace.append("external_submitted", result=result.model_dump(mode="json"))
    else:
        result = ExternalResult.model_validate(recorded.data["result"])
    updated = manifest.model_copy(update={"external": result})
    write_manifest(cp, updated, trace)
    return updated


# ---- one candidate -------------------------------------------------------------------------------------------
def run_candidate(ctx: RoundContext, plan: CandidatePlan) -> Manifest:
    cp = ctx.round.candidate(plan.name)
    trace = Trace(cp.trace)
    if trace.has("manifest_written") and cp.manifest.exists():
        manifest = read_manifest(cp.manifest)
        ctx.observer.candidate_finished(ctx.round.number, manifest)
        return manifest
    cp.root.mkdir(parents=True, exist_ok=True)
    started_at = _first_ts(trace) or time.time()

    ctx.observer.candidate_stage(ctx.round.number, plan.name, "fork")
    result = _forked_and_edited(ctx, plan, cp, trace)
    violations = detect_violations(ctx.paths.substrate, cp.sandbox, ctx.spec, ctx.hashes)
    diff, edited = recipe_diff(ctx.paths.substrate, cp.sandbox, ctx.spec)
    recipe_files, recipe_files_problem = recipe_files_or_problem(ctx.paths.substrate, cp.sandbox, ctx.spec)
    base = dict(
        campaign=ctx.config.name,
        round=ctx.round.number,
        candidate_id=cp.candidate_id,
        role=plan.role,
        replicate_of=plan.replicate_of,
        combines=plan.combines,
        axis=plan.axis,
        axis_category=plan.axis_category,
        seed=plan.seed,
        worker=ctx.worker.name if plan.role == "worker" else "none",
        rationale=result.rationale,
        changes=result.changes,
        knob_values=knob_settings(cp.sandbox, ctx.spec),
        recipe_diff=diff,
        edited_files=edited,
        recipe_files=recipe_files,
        recipe_files_problem=recipe_files_problem,
        violations=violations,
        policy_sha256=ctx.policy.sha256(),
        worker_usage=result.usage,
        started_at=started_at,
    )
    if violations:
        if not trace.has("violations"):
            trace.append("violations", violations=[v.model_dump() for v in violations])
        failure = Failure(
            failure_class="violation",
            message="; ".join(f"{v.kind}: {v.path}" for v in violations) + " — the trial did not run",
        )
        manifest = Manifest(**base, failure=failure, finished_at=time.time())
    elif result.error is not None:
        failure = Failure(failure_class="worker_error", message=result.error)
        manifest = Manifest(**base, failure=failure, finished_at=time.time())
    else:
        ctx.observer.candidate_stage(ctx.round.number, plan.name, "trial")
        outcome = run_trial_steps(
            candidate=cp,
            campaign_root=ctx.paths.root,
            spec=ctx.spec,
            objective=ctx.policy.objective,
            seed=plan.seed,
            executor=ctx.executor,
            trace=trace,
        )
        manifest = Manifest(
            **base,
            training=outcome.training,
            training_warnings=outcome.training_warnings,
            checkpoints=outcome.checkpoints,
            selected=outcome.selected,
            failure=outcome.failure,
            cost=_with_worker_cost(outcome.cost, result),
            finished_at=time.time(),
        )
    write_manifest(cp, manifest, trace)
    ctx.observer.candidate_finished(ctx.round.number, manifest)
    return manifest


def _forked_and_edited(ctx: RoundContext, plan: CandidatePlan, cp: CandidatePaths, trace: Trace) -> WorkerResult:
    """Fork the sandbox and let the worker edit it, once. A crash mid-edit re-forks: half-edits never survive."""
    recorded = trace.last("worker_finished")
    if recorded is not None and cp.sandbox.exists():
        return WorkerResult.model_validate(recorded.data["result"])
    if cp.sandbox.exists() or cp.work.exists():
        remove_sandbox(cp.sandbox)
        remove_sandbox(cp.work)
    rebased = _rebased_changes(ctx, plan) if plan.role == "replicate" else None
    fork_sandbox(ctx.paths.substrate, ctx.spec, cp.sandbox, _recipe_for(ctx, plan, rebased))
    trace.append("forked")
    if plan.role == "anchor":
        result = WorkerResult(rationale="anchor: the standing recipe unchanged, with a fresh seed (measures noise)")
    elif plan.role == "replicate":
        result = _replicate(ctx, plan, cp, rebased)
    elif plan.role == "combination":
        result = _combine(ctx, plan, cp)
    else:
        ctx.observer.candidate_stage(ctx.round.number, plan.name, "worker")
        result = _propose(ctx, plan, cp)
    trace.append("worker_finished", result=result.model_dump(mode="json"))
    return result


def _propose(ctx: RoundContext, plan: CandidatePlan, cp: CandidatePaths) -> WorkerResult:
    assert plan.axis is not None
    request = WorkerRequest(
        round=ctx.round.number,
        candidate_id=cp.candidate_id,
        seeds=worker_seeds(ctx.config.seed, ctx.round.number, cp.candidate_id, trial=plan.seed, worker=ctx.worker.name),
        sandbox=cp.sandbox,
        spec=ctx.spec,
        axis_name=plan.axis,
        axis=ctx.spec.search.axes[plan.axis],
        policy_markdown=ctx.round.policy_md.read_text(),
        brief=ctx.brief,
        dead_ends=ctx.policy.dead_ends,
        history=ctx.history,
        round_candidates=ctx.worker_candidates,
    )
    try:
        return ctx.worker.propose(request)
    except Exception as exc:  # a worker is foreign code (an agent); its failure is the candidate's, not the loop's
        return WorkerResult(rationale="the worker failed before finishing", error=f"{type(exc).__name__}: {exc}")


def _replicate(
    ctx: RoundContext, plan: CandidatePlan, cp: CandidatePaths, changes: list[KnobChange] | None
) -> WorkerResult:
    """A replicate re-runs its source's recipe with a fresh seed; when the standing recipe changed since the source
    ran (`changes`: the source's knob changes, from `_rebased_changes`), they are applied on top of the standing
    recipe in force instead (forked by `_recipe_for`), so that a change is promoted only once tested together with
    the ones promoted before it."""
    if changes is None:
        return WorkerResult(rationale=f"replicate of {plan.replicate_of} with a fresh seed, before promotion")
    applied = _apply_changes(ctx, cp, changes)
    standing = ctx.policy.standing_recipe.source or "the substrate's recipe"
    return WorkerResult(
        rationale=f"replicate of {plan.replicate_of} with a fresh seed, before promotion: its change "
        f"({'; '.join(c.describe() for c in changes)}) applied on the standing recipe in force ({standing}), "
        "which changed since it ran",
        changes=applied,
    )


def _apply_changes(ctx: RoundContext, cp: CandidatePaths, changes: list[KnobChange]) -> list[KnobChange]:
    """Write recorded knob changes into a fork; returns the changes it made there (against the fork's recipe)."""
    before = knob_values(cp.sandbox, ctx.spec)
    for change in changes:
        knob = ctx.spec.search.axes[change.axis].knobs[change.knob]
        value = change.new
        if knob.type == "weights":
            weights = dict(read_knob(cp.sandbox, knob))
            weights[change.key.rsplit(".", 1)[1]] = change.new
            value = {d: w for d, w in weights.items() if w is not None}
        write_knob(cp.sandbox, knob, value)
    return knob_changes(before, cp.sandbox, ctx.spec)


def _combine(ctx: RoundContext, plan: CandidatePlan, cp: CandidatePaths) -> WorkerResult:
    """A combination applies the knob changes of the candidates the policy names, together, on the standing recipe
    in force: changes each measured alone, tested as a whole. Only knob changes combine (the meta agent names only
    candidates whose edits were declared knob changes); a knob two sources move takes the first source's value."""
    sources = {m.candidate_id: m for m in ctx.history if m.candidate_id in plan.combines}
    missing = [c for c in plan.combines if c not in sources]
    if missing:
        raise IntegrityError(f"the combination names candidates with no manifest: {', '.join(missing)}")
    changes: list[KnobChange] = []
    taken: set[str] = set()
    for source_id in plan.combines:
        for change in sources[source_id].changes:
            if change.key not in taken:
                taken.add(change.key)
                changes.append(change)
    applied = _apply_changes(ctx, cp, changes)
    standing = ctx.policy.standing_recipe.source or "the substrate's recipe"
    parts = "; ".join(f"{c} ({', '.join(ch.describe() for ch in sources[c].changes)})" for c in plan.combines)
    return WorkerResult(
        rationale=f"combination, on the standing recipe in force ({standing}), of the changes of {parts}: each "
        "was measured alone, this run measures them together",
        changes=applied,
    )


def _rebased_changes(ctx: RoundContext, plan: CandidatePlan) -> list[KnobChange] | None:
    """The source's knob changes, when the standing recipe changed since the source's round and those changes are
    all its edits did (declared knobs only, in the files they live in); else None: the source's files are copied."""
    source = next((m for m in ctx.history if m.candidate_id == plan.replicate_of), None)
    if source is None or not source.changes:
        return None
    then = CampaignStore(ctx.paths).policy_or_none(source.round)
    if then is None or then.standing_recipe.files == ctx.policy.standing_recipe.files:
        return None
    if not set(source.edited_files) <= {c.file for c in source.changes}:
        return None
    axes = ctx.spec.search.axes
    if any(c.axis not in axes or c.knob not in axes[c.axis].knobs for c in source.changes):
        return None
    return list(source.changes)


def _recipe_for(ctx: RoundContext, plan: CandidatePlan, rebased: list[KnobChange] | None) -> StandingRecipe:
    if plan.role != "replicate" or plan.replicate_of is None or rebased is not None:
        return ctx.policy.standing_recipe
    recorded = next((m for m in ctx.history if m.candidate_id == plan.replicate_of), None)
    if recorded is not None and recorded.recipe_files is not None:
        return StandingRecipe(files=dict(recorded.recipe_files), source=plan.replicate_of)
    round_name, name = plan.replicate_of.split("/", 1)  # a manifest written before recipe files were recorded
    source = ctx.paths.round(int(round_name[1:])).candidate(name)
    if not source.sandbox.exists():
        raise IntegrityError("the candidate to replicate has no sandbox", path=source.sandbox)
    files = editable_files_changed(ctx.paths.substrate, source.sandbox, ctx.spec)
    return StandingRecipe(files=files, source=plan.replicate_of)


def _with_worker_cost(cost: Cost, result: WorkerResult) -> Cost:
    return cost.model_copy(
        update={
            "llm_input_tokens": result.usage.input_tokens,
            "llm_output_tokens": result.usage.output_tokens,
            "llm_cost_usd": result.usage.cost_usd,
        }
    )


def write_manifest(cp: CandidatePaths, manifest: Manifest, trace: Trace) -> None:
    atomic_write_json(cp.manifest, manifest)
    trace.append("manifest_written", sha256=hash_file(cp.manifest))


def _first_ts(trace: Trace) -> float | None:
    for event in trace.events():
        return float(event.ts)
    return None
