"""Choosing the worker and meta-agent backends: `evotrain run --agent … --meta …` builds them here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from evotrain.llm_api import ModelPrice
from evotrain.policy.meta_llm import LLMMetaAgent, LLMMetaConfig
from evotrain.policy.meta_none import KeepPolicyMetaAgent
from evotrain.policy.meta_protocol import MetaAgent
from evotrain.policy.meta_rules import RuleMetaAgent
from evotrain.workers.budget import AgentBudget, RoundLedger
from evotrain.workers.cli_agents import ClaudeCodeWorker, CLIAgentConfig, CodexWorker
from evotrain.workers.guided import GuidedWorker
from evotrain.workers.mutator import MutatorWorker
from evotrain.workers.openai_worker import OpenAIConfig, OpenAIWorker
from evotrain.workers.optuna_worker import OptunaWorker
from evotrain.workers.protocol import Worker

AgentKind = Literal["mutator", "guided", "optuna-tpe", "random", "claude-code", "codex", "openai"]
MetaKind = Literal["rules", "llm", "none"]
AGENT_KINDS: tuple[str, ...] = ("mutator", "guided", "optuna-tpe", "random", "claude-code", "codex", "openai")
META_KINDS: tuple[str, ...] = ("rules", "llm", "none")


class AgentChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AgentKind = "mutator"
    meta: MetaKind = "rules"
    model: str | None = None  # the worker's model (openai: required unless EVOTRAIN_AGENT_MODEL is set)
    base_url: str | None = None  # the agent's endpoint (openai, codex: a /v1 root; claude-code: ANTHROPIC_BASE_URL)
    meta_model: str | None = None
    price: ModelPrice = ModelPrice()
    budget: AgentBudget = AgentBudget()


def build_worker(choice: AgentChoice) -> Worker:
    """One worker object serves every candidate of a run; its ledger sums the per-round budget across threads."""
    ledger = RoundLedger()
    if choice.agent == "mutator":
        return MutatorWorker()
    if choice.agent == "guided":
        return GuidedWorker()
    if choice.agent in ("optuna-tpe", "random"):
        return OptunaWorker("tpe" if choice.agent == "optuna-tpe" else "random")
    if choice.agent == "openai":
        config = OpenAIConfig(base_url=choice.base_url, model=choice.model, price=choice.price)
        return OpenAIWorker(config, budget=choice.budget, ledger=ledger)
    cli_config = CLIAgentConfig(model=choice.model, base_url=choice.base_url, price=choice.price)
    if choice.agent == "claude-code":
        return ClaudeCodeWorker(cli_config, budget=choice.budget, ledger=ledger)
    return CodexWorker(cli_config, budget=choice.budget, ledger=ledger)


def build_meta_agent(choice: AgentChoice) -> MetaAgent:
    if choice.meta == "rules":
        return RuleMetaAgent()
    if choice.meta == "none":
        return KeepPolicyMetaAgent()
    config = LLMMetaConfig(base_url=choice.base_url, model=choice.meta_model or choice.model, price=choice.price)
    return LLMMetaAgent(config)
