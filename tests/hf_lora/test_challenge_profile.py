"""The `challenge` evaluation profile: the competition's settings are in the substrate's eval/config.toml and reach
the generation calls (vLLM's LLM(...) and SamplingParams, the transformers fallback's generate), the thinking chat
template is used where the model's template supports it, and max_tokens must fit in max_model_len."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from evotrain.cli import app
from evotrain.errors import ConfigError
from evotrain.hf_lora.build import EVALUATIONS, PROFILES, TEMPLATE, build_substrate

CHALLENGE = {
    "profile": "challenge",
    "generation.temperature": 0.0,
    "generation.top_p": 1.0,
    "generation.max_tokens": 7680,
    "generation.max_model_len": 8192,
    "generation.max_num_seqs": 64,
    "generation.gpu_memory_utilization": 0.85,
    "generation.max_lora_rank": 32,
    "prompt.enable_thinking": True,
}
THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}:{{ m['content'] }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant:"
    "{% if enable_thinking is defined and enable_thinking %}<think>{% else %}<nothink>{% endif %}{% endif %}"
)


def _dotted(doc: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        doc = doc[part]
    return doc


def _substrate_module(sub: Path, rel: str, name: str) -> ModuleType:
    """A module of a built substrate, imported from its own folder (its ROOT is that substrate)."""
    path = sub / rel
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def thinking_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a chat template that reads enable_thinking (as thinking models' templates do)."""
    folder = tmp_path_factory.mktemp("thinking") / "model"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = THINKING_TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    return folder


def _adapter(base: Path, dest: Path) -> Path:
    """A real, untrained LoRA adapter of rank 4 on ``base``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    model.save_pretrained(dest)
    return dest


def test_the_template_and_the_gpu_profile_are_the_challenge_settings() -> None:
    assert EVALUATIONS["challenge"] == CHALLENGE
    assert PROFILES["gpu"].evaluation == "challenge"
    assert {PROFILES[p].evaluation for p in ("cpu-smoke", "cpu-learn")} == {"cpu"}  # the CPU profiles stay fast
    template = tomllib.loads((TEMPLATE / "eval" / "config.toml").read_text())
    assert {key: _dotted(template, key) for key in CHALLENGE} == CHALLENGE
    assert "\\boxed{}" in template["prompt"]["suffix"]


def test_max_tokens_must_leave_room_for_the_prompt(generation: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = (TEMPLATE / "eval" / "config.toml").read_text()
    path.write_text(text.replace("max_tokens = 7680", "max_tokens = 8192"))
    with pytest.raises(generation.EvalConfigError) as caught:
        generation.load_config(path)
    message = str(caught.value)
    assert str(path) in message and "max_tokens 8192 leaves no room for the prompt in max_model_len 8192" in message
    assert "lower generation.max_tokens or raise generation.max_model_len" in message
    assert "Value error" not in message and "\n" not in message


def test_the_builder_refuses_evaluation_settings_that_do_not_validate(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(EVALUATIONS, "too-long", {**CHALLENGE, "generation.max_model_len": 4096})
    with pytest.raises(ConfigError, match=r"max_tokens 7680 leaves no room .* max_model_len 4096") as caught:
        build_substrate(
            tmp_path / "s",
            model=str(tiny_model),
            answers_path=tmp_path / "a.jsonl",
            profile="cpu-smoke",
            evaluation="too-long",
        )
    assert "eval/config.toml" in caught.value.render()
    assert not (tmp_path / "s").exists()
    result = CliRunner().invoke(
        app, ["substrate", "hf-lora", str(tmp_path / "t"), "--model", str(tiny_model), "--answers",
              str(tmp_path / "a.jsonl"), "--evaluation", "fast"],
    )  # fmt: skip
    assert result.exit_code == 2 and "unknown evaluation profile 'fast'" in result.output
    assert "Traceback" not in result.output


def test_thinking_is_asked_for_only_where_the_template_uses_it(generation: ModuleType) -> None:
    class Tokenizer:
        def __init__(self, template: str) -> None:
            self.chat_template = template
            self.calls: list[dict[str, Any]] = []

        def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
            self.calls.append(kwargs)
            return "text"

    on, off = generation.PromptConfig(suffix="!"), generation.PromptConfig(suffix="!", enable_thinking=False)
    thinking, plain = Tokenizer(THINKING_TEMPLATE), Tokenizer("{{ messages[0]['content'] }}")
    generation.render_prompt(thinking, "q", on)
    generation.render_prompt(thinking, "q", off)
    generation.render_prompt(plain, "q", on)
    assert [c.get("enable_thinking") for c in thinking.calls] == [True, False]
    assert "enable_thinking" not in plain.calls[0]  # a template without the switch gets no switch


def test_the_challenge_settings_reach_the_vllm_and_hf_calls(thinking_model: Path, tmp_path: Path) -> None:
    built = build_substrate(
        tmp_path / "sub", model=str(thinking_model), answers_path=tmp_path / "a.jsonl", profile="cpu-smoke",
        evaluation="challenge",
    )  # fmt: skip
    sub = built.path
    assert built.evaluation == "challenge"
    written = tomllib.loads((sub / "eval" / "config.toml").read_text())
    assert {key: _dotted(written, key) for key in CHALLENGE} == CHALLENGE
    generation = _substrate_module(sub, "eval/generation.py", "built_challenge_generation")
    config = generation.load_config()  # the substrate's own eval/config.toml
    checkpoint = _adapter(sub / "model" / "base", tmp_path / "adapter")
    prompts = ["In Alice's Wonderland, 2 # 3 = 5. Now 4 # 4 = ?"]

    plan, tokenizer = generation.plan_generation(config, [checkpoint], prompts, "vllm")
    assert plan.backend == "vllm" and plan.thinking is True
    assert plan.vllm.engine == {
        "model": str(sub / "model" / "base"),
        "enable_lora": True,
        "max_lora_rank": 32,
        "max_loras": 1,
        "enable_prefix_caching": True,
        "max_model_len": 8192,
        "max_num_seqs": 64,
        "gpu_memory_utilization": 0.85,
        "tensor_parallel_size": 1,
        "trust_remote_code": False,
        "seed": 0,
    }
    assert plan.vllm.sampling == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 7680}
    assert plan.vllm.adapters == [("candidate-1", 1, str(checkpoint.resolve()))]
    (ids,) = [p["prompt_token_ids"] for p in plan.vllm.prompts]
    text = "".join(tokenizer.convert_ids_to_tokens(ids))
    # the prompt, the challenge's suffix (the tiny vocabulary spells its newline as a space) and the thinking template
    assert text.startswith(f"<|im_start|>user:{prompts[0]} Please put your final answer inside `\\boxed{{}}`")
    assert text.endswith("<|im_start|>assistant:<think>")  # the thinking chat template

    plan, tokenizer = generation.plan_generation(config, [checkpoint], prompts, "hf")
    assert plan.backend == "hf" and plan.vllm is None
    assert plan.hf.generate == {"max_new_tokens": 7680, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    assert plan.hf.token_ids == [ids] and plan.hf.dtype == "float32"

    # The same arguments are what transformers' generate runs with: with a short budget (the whole 7680 would take
    # minutes of a random model on CPU), the real call returns at most that many tokens per prompt.
    short = config.model_copy(update={"generation": config.generation.model_copy(update={"max_tokens": 5})})
    plan, tokenizer = generation.plan_generation(short, [checkpoint], prompts, "hf")
    (outputs,) = list(generation.run_plan(plan, tokenizer))
    # each token of the tiny vocabulary is one character, and its decode puts a space between two tokens
    assert len(outputs) == 1 and len(outputs[0]) <= 2 * 5 - 1


def test_the_cpu_profiles_keep_short_answers_without_thinking(tiny_model: Path, tmp_path: Path) -> None:
    built = build_substrate(
        tmp_path / "sub", model=str(tiny_model), answers_path=tmp_path / "a.jsonl", profile="cpu-smoke"
    )
    written = tomllib.loads((built.path / "eval" / "config.toml").read_text())
    assert built.evaluation == written["profile"] == "cpu"
    assert written["generation"]["max_tokens"] == 16 and written["generation"]["max_model_len"] == 1024
    assert written["prompt"]["enable_thinking"] is False


def test_a_sampling_temperature_reaches_both_backends(generation: ModuleType) -> None:
    class Tokenizer:
        pad_token_id, eos_token_id = None, 7

    base = generation.load_config(TEMPLATE / "eval" / "config.toml")
    sampled = base.model_copy(
        update={"generation": base.generation.model_copy(update={"temperature": 0.6, "top_p": 0.9})}
    )
    hf = generation.hf_call(sampled, [], [[1, 2]], Tokenizer(), cuda=False)
    assert hf.generate == {
        "max_new_tokens": 7680,
        "do_sample": True,
        "temperature": 0.6,
        "top_p": 0.9,
        "pad_token_id": 7,
    }
    assert generation.vllm_call(sampled, [], [[1, 2]], gpus=2).sampling == {
        "temperature": 0.6,
        "top_p": 0.9,
        "max_tokens": 7680,
    }
    assert generation.vllm_call(sampled, [], [[1, 2]], gpus=2).engine["tensor_parallel_size"] == 2
