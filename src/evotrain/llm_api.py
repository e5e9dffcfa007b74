"""The OpenAI-compatible API that the agent worker and the LLM meta agent both call: its client, its key, and
what a model's tokens cost."""

from __future__ import annotations

import os
from typing import Annotated

import openai
from pydantic import BaseModel, ConfigDict, Field


class ModelPrice(BaseModel):
    """USD per million tokens. The default is 0 (a local model): give the real figures for a hosted API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: Annotated[float, Field(ge=0)] = 0.0
    output_per_mtok: Annotated[float, Field(ge=0)] = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1_000_000


def api_key(env: str, base_url: str | None) -> str:
    """The key in `env`; a local server (vLLM, Ollama, llama.cpp) accepts any key, and the SDK insists on a
    non-empty one. "" when there is neither."""
    return os.environ.get(env) or ("local" if base_url else "")


def make_client(base_url: str | None, key: str, timeout_s: float) -> openai.OpenAI:
    """A client that never retries by itself: the callers count every call against a budget."""
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=timeout_s)
