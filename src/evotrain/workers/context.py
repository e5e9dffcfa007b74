"""What an agent's sandbox knows about its campaign: `<candidate>/agent.json`, found through EVOTRAIN_AGENT_CONTEXT.

The file sits beside the sandbox, never inside it, so it is not counted as an edit. `evotrain trial …` run by the
agent reads it to find the substrate spec, the policy in force and its scratch folder `<candidate>/agent-work/`
(the official `work/` is written only by the trial after the worker returns).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from evotrain.errors import ConfigError
from evotrain.fileio import atomic_write_json
from evotrain.workers.protocol import WorkerRequest

CONTEXT_ENV = "EVOTRAIN_AGENT_CONTEXT"
CONTEXT_FILENAME = "agent.json"
AGENT_WORK = "agent-work"


class AgentContext(BaseModel):
    campaign_root: Path
    round: int
    candidate_id: str
    candidate_dir: Path
    sandbox: Path
    substrate: Path  # the campaign's read-only snapshot
    policy_json: Path
    agent_work: Path  # scratch trials of the agent: never the official work/
    seed: int  # the seed of the agent's own trials (the official trial uses the plan's seed)
    axis: str

    @property
    def trial_prefix(self) -> str:
        return f"{self.candidate_id}/agent"


def context_for(request: WorkerRequest) -> AgentContext:
    """Derive the campaign paths from the sandbox (RUN/rounds/rNNNN/candidates/<name>/sandbox)."""
    sandbox = request.sandbox.resolve()
    candidate_dir = sandbox.parent
    round_dir = candidate_dir.parent.parent
    root = round_dir.parent.parent
    if sandbox.name != "sandbox" or not (root / "campaign.toml").exists():
        raise ConfigError(
            "an agent worker's sandbox must lie in a campaign folder (RUN/rounds/rNNNN/candidates/<name>/sandbox)",
            path=request.sandbox,
            fix="run agent workers through `evotrain run` or `Campaign(...)`",
        )
    return AgentContext(
        campaign_root=root,
        round=request.round,
        candidate_id=request.candidate_id,
        candidate_dir=candidate_dir,
        sandbox=sandbox,
        substrate=root / "substrate",
        policy_json=round_dir / "policy.json",
        agent_work=candidate_dir / AGENT_WORK,
        seed=request.seeds.agent_trials,
        axis=request.axis_name,
    )


def write_context(context: AgentContext) -> Path:
    path = context.candidate_dir / CONTEXT_FILENAME
    atomic_write_json(path, context)
    context.agent_work.mkdir(parents=True, exist_ok=True)
    return path


def load_context() -> AgentContext:
    raw = os.environ.get(CONTEXT_ENV)
    if not raw:
        raise ConfigError(
            f"{CONTEXT_ENV} is not set: `evotrain trial` runs only inside an agent worker's sandbox",
            fix="an agent worker started by `evotrain run --agent …` has it set",
        )
    path = Path(raw)
    if not path.exists():
        raise ConfigError("agent context file not found", path=path, fix=f"{CONTEXT_ENV} must name agent.json")
    return AgentContext.model_validate_json(path.read_text())
