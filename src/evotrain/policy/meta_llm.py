"""The LLM meta agent: a model proposes the policy update, code measures and the constitution decides.

The model gets the round evidence, the current policy (JSON) and the constitution (read-only text) and must answer
one JSON object matching `PolicyUpdate`: which candidate to promote, axis status changes, the dead-end registry,
the noise multiplier k, the selection objective, asks, replicates, and optionally a narrative for the evidence's
`surprises` and `patterns` sections. Measurements are never the model's: the noise band, the external best and the
plateau count come from `policy.measurements`, as for the rule agent. The update is applied onto a copy of the
current policy and checked with `check_policy_update`. A refused, invalid or failed update falls back to the rule
meta agent, and why is recorded twice: in the next policy's changelog (`meta_fallback`) and in the `MetaRecord`
returned with the policy (the campaign store writes it to `rounds/rNNNN/meta.json`), which also holds the model's
narrative marked `model_written` and its token usage.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evotrain.errors import ConfigError
from evotrain.llm_api import ModelPrice, api_key, make_client
from evotrain.policy.constitution import Constitution
from evotrain.policy.constitution_checks import check_policy_update
from evotrain.policy.measurements import Measurements, measure
from evotrain.policy.meta_protocol import MetaInputs, Proposal
from evotrain.policy.meta_rules import RuleMetaAgent
from evotrain.records.evidence import Evidence
from evotrain.records.manifest import Manifest
from evotrain.records.meta import MetaRecord, Narrative
from evotrain.records.policy import LEGACY_OBJECTIVE_MODES, DeadEnd, Policy, Provenance, StandingRecipe
from evotrain.substrate.spec import SubstrateSpec


class AxisStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    axis: str
    status: Literal["active", "retired"]
    reason: str


class DeadEndEntry(BaseModel):
    """A registry entry; `round` is left out for a new one (it gets the evidence round)."""

    model_config = ConfigDict(extra="forbid")
    round: int | None = None
    axis: str
    knob: str | None = None
    direction: Literal["increase", "decrease", "set"] | None = None
    value: Any = None
    description: str
    evidence: str = ""


class ObjectiveUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["optimize_dev", "proxy_aware"] | None = None

    @field_validator("mode", mode="before")
    @classmethod
    def _legacy_mode_name(cls, mode: object) -> object:
        return LEGACY_OBJECTIVE_MODES.get(mode, mode) if isinstance(mode, str) else mode

    domain_weights: dict[str, float] | None = None
    untrusted_domains: list[str] | None = None


class PolicyUpdate(BaseModel):
    """What the model may change. Unset fields leave the policy as it is."""

    model_config = ConfigDict(extra="forbid")

    rationale: str = Field(description="why these changes, citing the evidence")
    promote: str | None = Field(None, description="candidate id whose recipe becomes the standing recipe")
    axes: list[AxisStatusChange] = []
    dead_ends: list[DeadEndEntry] | None = Field(
        None, description="the whole dead-end registry after the update (keep every existing entry, in order)"
    )
    noise_k: float | None = Field(None, description="promotion threshold multiplier: threshold = k · band")
    anchors_per_round: int | None = Field(None, ge=1, description="unchanged runs (fresh seeds) in each round")
    replicates: int | None = Field(None, ge=1, description="fresh-seed runs of a near-threshold win before promotion")
    objective: ObjectiveUpdate | None = None
    asks: list[str] | None = None
    replicate: list[str] = Field([], description="candidate ids to re-run with a fresh seed before promotion")
    combine: list[str] = Field(
        [],
        description="worker candidate ids (two or more, declared knob changes only) whose changes the next round runs "
        "together, on the standing recipe, as one combination candidate",
    )
    narrative: Narrative | None = None


class LLMMetaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    price: ModelPrice = ModelPrice()
    request_timeout_s: float = 600.0


class InvalidUpdate(Exception):
    """The model's update names something that does not exist (a candidate, an axis) or is not JSON."""


SYSTEM = """You are the meta agent of an evotrain campaign. You rewrite the rolling search policy from one round's
evidence. The constitution below is frozen: an update that breaks any of its rules is refused by code. Answer with
ONE JSON object, nothing else, matching this JSON schema (omit a field to leave that part of the policy unchanged):

{schema}

Measurements (noise band, external best, rounds without external gain) are filled in by code; do not invent them.

# Constitution (read-only)
{constitution}"""


class LLMMetaAgent:
    name = "llm"

    def __init__(self, config: LLMMetaConfig) -> None:
        self.config = config
        self.fallback = RuleMetaAgent()
        base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
        model = config.model or os.environ.get("EVOTRAIN_META_MODEL") or os.environ.get("EVOTRAIN_AGENT_MODEL")
        if not model:
            raise ConfigError(
                "the llm meta agent needs a model name", fix="pass --meta-model or set EVOTRAIN_META_MODEL"
            )
        key = api_key(config.api_key_env, base_url)
        if not key:
            raise ConfigError(
                f"no API key for the llm meta agent: {config.api_key_env} is not set",
                fix=f"export {config.api_key_env}=…, or pass a local base URL",
            )
        self.model = model
        self.client = make_client(base_url, key, config.request_timeout_s)

    def propose(self, inputs: MetaInputs) -> Proposal:
        policy, evidence, spec, history = inputs.policy, inputs.evidence, inputs.spec, inputs.history
        constitution = inputs.constitution
        measured = measure(policy, evidence, spec, history)

        def ruled() -> Policy:
            return self.fallback.propose(inputs).policy

        record = MetaRecord(round=evidence.round, model=self.model, outcome="accepted")
        started = time.monotonic()
        try:
            raw = self._ask(policy, evidence, constitution, record)
            update = PolicyUpdate.model_validate(raw)
            record.update, record.narrative = raw, update.narrative
            proposed = apply_update(
                update, previous=policy, measured=measured, evidence=evidence, history=history, spec=spec
            )
        except openai.OpenAIError as exc:
            return self._fall_back(ruled, record, "endpoint_error", f"{type(exc).__name__}: {exc}", started)
        except (InvalidUpdate, ValidationError) as exc:
            return self._fall_back(ruled, record, "invalid", _short(exc), started)
        breaches = check_policy_update(
            previous=policy, proposed=proposed, evidence=evidence, constitution=constitution, spec=spec, history=history
        )
        if breaches:
            reason = "; ".join(b.render() for b in breaches)
            return self._fall_back(ruled, record, "refused", reason, started)
        record.wall_s = time.monotonic() - started
        return Proposal(proposed, record)

    def _ask(self, policy: Policy, evidence: Evidence, constitution: Constitution, record: MetaRecord) -> Any:
        schema = json.dumps(PolicyUpdate.model_json_schema(), indent=1)
        payload = {"current_policy": policy.model_dump(mode="json"), "round_evidence": evidence.model_dump(mode="json")}
        response = self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": SYSTEM.format(schema=schema, constitution=constitution.text)},
                {"role": "user", "content": json.dumps(payload)},
            ],
            response_format={"type": "json_object"},
        )
        if response.usage is not None:
            record.input_tokens = response.usage.prompt_tokens
            record.output_tokens = response.usage.completion_tokens
            record.cost_usd = self.config.price.cost(record.input_tokens, record.output_tokens)
        content = response.choices[0].message.content or ""
        try:
            return json.loads(content)
        except json.JSONDecodeError as exc:
            raise InvalidUpdate(f"the model's answer is not JSON: {exc}: {content[:200]!r}") from None

    def _fall_back(
        self, ruled: Callable[[], Policy], record: MetaRecord, outcome: str, reason: str, started: float
    ) -> Proposal:
        record.outcome = outcome  # type: ignore[assignment]
        record.reason = reason
        entry = Provenance(
            round=record.round,
            action="meta_fallback",
            reason=f"the LLM meta agent's update was {outcome.replace('_', ' ')} ({reason}); "
            "the rule meta agent's policy is used",
        )
        fallback = ruled()
        fallback.changelog.insert(0, entry)
        record.wall_s = time.monotonic() - started
        return Proposal(fallback, record)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])
    return str(exc)


def apply_update(
    update: PolicyUpdate,
    *,
    previous: Policy,
    measured: Measurements,
    evidence: Evidence,
    history: list[Manifest],
    spec: SubstrateSpec,
) -> Policy:
    """The next policy: `previous` with the model's decisions and the measurements (`policy.measurements`)."""
    nxt = previous.model_copy(deep=True)
    nxt.round = previous.round + 1
    nxt.parent_sha256 = previous.sha256()
    nxt.changelog = []
    measured.apply(nxt)
    nxt.replicate = list(update.replicate)
    nxt.combine = _combinable_sources(update.combine, history)
    r = evidence.round

    def log(action: str, reason: str) -> Provenance:
        entry = Provenance(round=r, action=action, reason=reason)
        nxt.changelog.append(entry)
        return entry

    log("llm_update", update.rationale)
    if update.noise_k is not None:
        nxt.noise.k = update.noise_k
        nxt.noise.threshold = update.noise_k * nxt.noise.band if nxt.noise.band is not None else None
        nxt.noise.provenance.append(log("noise_k", f"k = {update.noise_k:g}"))
    if update.anchors_per_round is not None and update.anchors_per_round != nxt.noise.anchors_per_round:
        nxt.noise.anchors_per_round = update.anchors_per_round
        nxt.noise.provenance.append(log("anchors_per_round", f"{update.anchors_per_round} anchor(s) per round"))
    if update.replicates is not None and update.replicates != nxt.noise.replicates:
        nxt.noise.replicates = update.replicates
        nxt.noise.provenance.append(log("replicates", f"{update.replicates} replicate(s) of a near-threshold win"))
    if update.promote is not None:
        nxt.standing_recipe = _promoted(update.promote, previous, evidence, history, log)
    for change in update.axes:
        axis = next((a for a in nxt.axes if a.name == change.axis), None)
        if axis is None:
            raise InvalidUpdate(f"axes: no axis {change.axis!r} in the policy")
        if axis.status != change.status:
            axis.status = change.status
            axis.provenance.append(log("retired" if change.status == "retired" else "activated", change.reason))
    if update.dead_ends is not None:
        nxt.dead_ends = [DeadEnd(**{**e.model_dump(), "round": e.round or r}) for e in update.dead_ends]
        for entry in nxt.dead_ends[len(previous.dead_ends) :]:
            log("dead_end", entry.description)
    if update.objective is not None:
        _apply_objective(update.objective, nxt, spec, log)
    if update.asks is not None:
        nxt.asks = list(update.asks)
    if update.narrative is not None:
        for section in ("surprises", "patterns"):
            text = getattr(update.narrative, section).strip()
            if text:
                log("model_narrative", f"[model-written] {section}: {text}")
    return nxt


def _combinable_sources(ids: list[str], history: list[Manifest]) -> list[str]:
    if not ids:
        return []
    if len(ids) < 2:
        raise InvalidUpdate("combine: name two candidates or more (one is a replicate)")
    known = {m.candidate_id: m for m in history}
    for candidate_id in ids:
        m = known.get(candidate_id)
        if m is None or m.role != "worker" or not m.changes:
            raise InvalidUpdate(f"combine: {candidate_id!r} is not a worker candidate with recorded knob changes")
        if not set(m.edited_files) <= {c.file for c in m.changes}:
            raise InvalidUpdate(f"combine: {candidate_id!r} made free-form edits; only knob changes can be combined")
    return list(ids)


def _promoted(source: str, previous: Policy, evidence: Evidence, history: list[Manifest], log: Any) -> StandingRecipe:
    summary = next((c for c in evidence.candidates if c.candidate_id == source), None)
    manifest = next((m for m in history if m.candidate_id == source), None)
    if summary is None or manifest is None or not summary.recipe_files:
        raise InvalidUpdate(f"promote: {source!r} is not a candidate of this round with recipe files")
    entry = log("promote", f"{source} becomes the standing recipe (LLM meta agent)")
    return StandingRecipe(
        files=dict(summary.recipe_files),
        diff=manifest.recipe_diff,
        source=source,
        changes=[*previous.standing_recipe.changes, *manifest.changes],
        provenance=[*previous.standing_recipe.provenance, entry],
    )


def _apply_objective(update: ObjectiveUpdate, nxt: Policy, spec: SubstrateSpec, log: Any) -> None:
    objective = nxt.objective
    named = set(update.domain_weights or {}) | set(update.untrusted_domains or [])
    unknown = sorted(named - set(spec.metric.domains))
    if unknown:
        raise InvalidUpdate(f"objective: unknown domain(s) {', '.join(unknown)}")
    if update.mode is not None and update.mode != objective.mode:
        objective.mode = update.mode
        objective.provenance.append(log("objective_mode", update.mode))
    if update.domain_weights is not None and update.domain_weights != objective.domain_weights:
        objective.domain_weights = dict(update.domain_weights)
        objective.provenance.append(log("domain_weights", json.dumps(update.domain_weights, sort_keys=True)))
    if update.untrusted_domains is not None and update.untrusted_domains != objective.untrusted_domains:
        objective.untrusted_domains = list(update.untrusted_domains)
        objective.provenance.append(log("untrusted_domains", ", ".join(update.untrusted_domains) or "none"))
