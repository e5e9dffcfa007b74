"""`rounds/rNNNN/meta.json`: what a meta agent that is a model did with one round's evidence (the rule agent
leaves none). The meta agent returns it with its policy; the campaign store writes it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Narrative(BaseModel):
    model_config = ConfigDict(extra="forbid")
    surprises: str = ""
    patterns: str = ""


class MetaRecord(BaseModel):
    """`rounds/rNNNN/meta.json`: what the LLM meta agent did with one round's evidence."""

    round: int
    meta_agent: str = "llm"
    model: str
    outcome: Literal["accepted", "refused", "invalid", "endpoint_error"]
    reason: str = ""
    update: dict[str, Any] | None = None
    narrative: Narrative | None = None
    model_written: bool = True  # the narrative and the update are a model's text, not measurements
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
