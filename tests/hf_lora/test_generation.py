"""The frozen evaluation's settings, prompt and backend choice (vLLM is not installed on these machines)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from evotrain.hf_lora.build import TEMPLATE


class _RecordingTokenizer:
    """Stands in for a tokenizer: renders messages as role:content lines and records how it was called."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        self.calls.append({"messages": messages, **kwargs})
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        self.calls.append({"text": text, "add_special_tokens": add_special_tokens})
        return {"input_ids": [ord(c) for c in text]}


def test_template_config_validates(generation: ModuleType) -> None:
    config = generation.load_config(TEMPLATE / "eval" / "config.toml")
    assert config.generation.max_lora_rank == 32 and config.generation.backend == "auto"
    assert "\\boxed{}" in config.prompt.suffix
    assert config.model.folder(Path("/sub")) == Path("/sub/model/base")


def test_prompt_is_the_chat_template_of_prompt_plus_suffix(generation: ModuleType) -> None:
    tok = _RecordingTokenizer()
    cfg = generation.PromptConfig(suffix=" [box it]")
    assert generation.render_prompt(tok, "2+3?", cfg) == "<user>2+3? [box it]<assistant>"
    assert tok.calls[-1]["add_generation_prompt"] is True and tok.calls[-1]["tokenize"] is False
    with_system = generation.PromptConfig(suffix="!", system="be brief")
    assert generation.chat_messages("q", with_system) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q!"},
    ]
    ids = generation.prompt_token_ids(tok, ["a"], cfg)
    assert ids == [[ord(c) for c in "<user>a [box it]<assistant>"]]
    assert tok.calls[-1]["add_special_tokens"] is False  # the template holds any BOS already


def test_backend_choice(generation: ModuleType) -> None:
    assert generation.choose_backend("auto", vllm_ok=False) == "hf"
    assert generation.choose_backend("auto", vllm_ok=True) == "vllm"
    assert generation.choose_backend("hf", vllm_ok=True) == "hf"
    with pytest.raises(generation.EvalConfigError, match="pip install vllm"):
        generation.choose_backend("vllm", vllm_ok=False)
    # Here: no vLLM and no CUDA, so `auto` falls back to transformers.
    assert generation.vllm_available() is False
    assert generation.choose_backend("auto") == "hf"


def test_bad_config_names_the_field(generation: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = (TEMPLATE / "eval" / "config.toml").read_text()
    path.write_text(text.replace("max_lora_rank = 32", "max_lora_rank = 64"))
    with pytest.raises(generation.EvalConfigError, match=r"generation\.max_lora_rank"):
        generation.load_config(path)
    path.write_text(text.replace('backend = "auto"', 'backend = "tgi"'))
    with pytest.raises(generation.EvalConfigError, match=r"generation\.backend"):
        generation.load_config(path)


def test_adapter_rank_reads_rank_pattern(generation: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text('{"r": 8, "rank_pattern": {"q_proj": 16}}')
    assert generation.read_adapter_rank(tmp_path) == 16
