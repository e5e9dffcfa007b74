"""Frozen: the evaluation settings, the prompt, and the generation backends (vLLM on GPU, HF generate elsewhere).

The prompt is the model's chat template applied to one user turn: the item's prompt followed by the challenge's
suffix asking for the answer in ``\\boxed{}``, with ``enable_thinking`` passed to the template when the template
uses it. train.py builds its training prompts with ``chat_messages`` from here, so training and evaluation see the
same messages. The defaults are the competition's stated scoring settings (the ``challenge`` profile): temperature
0, top_p 1, max_tokens 7680, max_model_len 8192, max_num_seqs 64, gpu_memory_utilization 0.85, max_lora_rank 32,
thinking on.

Every call to a backend goes through a plan (:func:`plan_generation`): the exact arguments given to ``vllm.LLM``,
``vllm.SamplingParams`` and ``LoRARequest``, or to transformers' ``generate``, so what reaches the engine can be
read without running it.

Backends: ``vllm`` (``vllm.LLM`` with LoRA enabled and prefix caching, the adapter loaded per request through a
``LoRARequest``, one engine for all the checkpoints of a call) and ``hf`` (transformers ``generate`` on the base
model with the peft adapters, left-padded batches). ``auto`` picks vLLM when it imports and CUDA is available, else HF.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "eval" / "config.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    path: str = "model/base"  # relative to the substrate root, or absolute
    trust_remote_code: bool = False

    def folder(self, root: Path = ROOT) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else root / path


class GenerationConfig(_Strict):
    backend: Literal["auto", "vllm", "hf"] = "auto"
    temperature: float = Field(default=0.0, ge=0)  # 0: greedy
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=7680, ge=1)
    max_model_len: int = Field(default=8192, ge=16)
    max_num_seqs: int = Field(default=64, ge=1)  # vLLM: sequences decoded at once
    max_lora_rank: int = Field(default=32, ge=1, le=32)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    hf_batch_size: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _room_for_the_prompt(self) -> GenerationConfig:
        if self.max_tokens >= self.max_model_len:
            raise ValueError(
                f"max_tokens {self.max_tokens} leaves no room for the prompt in max_model_len {self.max_model_len} "
                "(the context holds the prompt and the answer); lower generation.max_tokens or raise "
                "generation.max_model_len"
            )
        return self


class PromptConfig(_Strict):
    suffix: str
    system: str | None = None  # a system message before the user turn; None: whatever the template does
    enable_thinking: bool = True  # passed to the chat template when the template uses it


class EvalConfig(_Strict):
    profile: str = "custom"  # the evaluation profile that wrote this file (docs/hf-lora.md); custom: by hand
    model: ModelConfig = ModelConfig()
    generation: GenerationConfig = GenerationConfig()
    prompt: PromptConfig


class EvalConfigError(Exception):
    pass


def load_config(path: Path = CONFIG) -> EvalConfig:
    try:
        return EvalConfig.model_validate(tomllib.loads(path.read_text()))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EvalConfigError(f"{path}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise EvalConfigError(f"{path}: {problems}") from None


def chat_messages(prompt: str, config: PromptConfig) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": config.system}] if config.system is not None else []
    return [*messages, {"role": "user", "content": prompt + config.suffix}]


def template_uses_thinking(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template reads ``enable_thinking`` (a template that does not would ignore it)."""
    template = getattr(tokenizer, "chat_template", None)
    texts = template.values() if isinstance(template, dict) else [template or ""]
    return any("enable_thinking" in str(text) for text in texts)


def template_options(tokenizer: Any, config: PromptConfig) -> dict[str, Any]:
    """The extra arguments of ``apply_chat_template``: ``enable_thinking`` where the template supports it."""
    return {"enable_thinking": config.enable_thinking} if template_uses_thinking(tokenizer) else {}


def render_prompt(tokenizer: Any, prompt: str, config: PromptConfig) -> str:
    """The exact text the model continues: the chat template with the generation prompt opened."""
    text: str = tokenizer.apply_chat_template(
        chat_messages(prompt, config), tokenize=False, add_generation_prompt=True, **template_options(tokenizer, config)
    )
    return text


def prompt_token_ids(tokenizer: Any, prompts: Sequence[str], config: PromptConfig) -> list[list[int]]:
    # The template already holds any BOS it wants: adding special tokens again would double it.
    return [
        list(tokenizer(render_prompt(tokenizer, p, config), add_special_tokens=False)["input_ids"]) for p in prompts
    ]


def vllm_available() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def choose_backend(requested: str, *, vllm_ok: bool | None = None) -> Literal["vllm", "hf"]:
    if requested == "hf":
        return "hf"
    ok = vllm_available() if vllm_ok is None else vllm_ok
    if requested == "vllm":
        if not ok:
            raise EvalConfigError(
                "eval/config.toml asks for backend = 'vllm', but vLLM does not import or no CUDA device is "
                "visible; install vLLM on a GPU machine (pip install vllm) or set backend = 'auto'"
            )
        return "vllm"
    return "vllm" if ok else "hf"


def read_adapter_rank(checkpoint: Path) -> int:
    """The largest LoRA rank of a checkpoint (r and rank_pattern of adapter_config.json)."""
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    return max([int(config["r"]), *(int(v) for v in (config.get("rank_pattern") or {}).values())])


class VllmCall(_Strict):
    """The arguments of every vLLM call of one evaluation: ``LLM(**engine)``, ``SamplingParams(**sampling)``,
    ``LoRARequest(*adapter)`` for each checkpoint, ``llm.generate(prompts, ...)``."""

    engine: dict[str, Any]
    sampling: dict[str, Any]
    adapters: list[tuple[str, int, str]]
    prompts: list[dict[str, list[int]]]


class HfCall(_Strict):
    """The arguments of the transformers fallback: ``model.generate(input_ids=..., attention_mask=..., **generate)``
    for each batch of ``batch_size`` prompts, for each checkpoint."""

    model: str
    trust_remote_code: bool
    device: Literal["cuda", "cpu"]
    dtype: Literal["bfloat16", "float32"]
    checkpoints: list[str]
    generate: dict[str, Any]
    batch_size: int
    token_ids: list[list[int]]


def vllm_call(config: EvalConfig, checkpoints: Sequence[Path], token_ids: list[list[int]], gpus: int) -> VllmCall:
    gen = config.generation
    engine = {
        "model": str(config.model.folder()),
        "enable_lora": True,
        "max_lora_rank": gen.max_lora_rank,
        "max_loras": 1,
        "enable_prefix_caching": True,
        "max_model_len": gen.max_model_len,
        "max_num_seqs": gen.max_num_seqs,
        "gpu_memory_utilization": gen.gpu_memory_utilization,
        "tensor_parallel_size": max(1, gpus),
        "trust_remote_code": config.model.trust_remote_code,
        "seed": 0,
    }
    return VllmCall(
        engine=engine,
        sampling={"temperature": gen.temperature, "top_p": gen.top_p, "max_tokens": gen.max_tokens},
        adapters=[(f"candidate-{n}", n, str(c.resolve())) for n, c in enumerate(checkpoints, start=1)],
        prompts=[{"prompt_token_ids": ids} for ids in token_ids],
    )


def hf_call(
    config: EvalConfig, checkpoints: Sequence[Path], token_ids: list[list[int]], tokenizer: Any, cuda: bool
) -> HfCall:
    gen = config.generation
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = (
        {"do_sample": True, "temperature": gen.temperature, "top_p": gen.top_p}
        if gen.temperature > 0
        else {"do_sample": False}
    )
    return HfCall(
        model=str(config.model.folder()),
        trust_remote_code=config.model.trust_remote_code,
        device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32",
        checkpoints=[str(c) for c in checkpoints],
        generate={"max_new_tokens": gen.max_tokens, **sampling, "pad_token_id": pad},
        batch_size=gen.hf_batch_size,
        token_ids=token_ids,
    )


def _generate_vllm(call: VllmCall) -> Iterator[list[str]]:
    """One engine for every checkpoint: each adapter is a LoRARequest of its own (engine start-up dominates)."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(**call.engine)
    params = SamplingParams(**call.sampling)
    prompts: Any = call.prompts
    for adapter in call.adapters:
        results = llm.generate(prompts, params, lora_request=LoRARequest(*adapter), use_tqdm=False)
        yield [r.outputs[0].text for r in results]


def _generate_hf(call: HfCall, tokenizer: Any) -> Iterator[list[str]]:
    """The base model loaded once; each checkpoint's adapter is loaded beside the others and made the active one."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    device = torch.device(call.device)
    base = AutoModelForCausalLM.from_pretrained(
        call.model, dtype=getattr(torch, call.dtype), trust_remote_code=call.trust_remote_code
    )
    model: Any = None
    for number, checkpoint in enumerate(call.checkpoints):
        name = f"c{number}"
        if model is None:
            model = PeftModel.from_pretrained(base, checkpoint, adapter_name=name).eval()
        else:
            model.load_adapter(checkpoint, adapter_name=name)
            model.set_adapter(name)
        model.to(device)
        yield _batched_hf(model, call, tokenizer, device)


def _batched_hf(model: Any, call: HfCall, tokenizer: Any, device: Any) -> list[str]:
    import torch

    pad = call.generate["pad_token_id"]
    token_ids = call.token_ids
    outputs: dict[int, str] = {}
    # Similar lengths batch together (less padding); results go back to the input order.
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    for start in range(0, len(order), call.batch_size):
        batch = [token_ids[i] for i in order[start : start + call.batch_size]]
        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):  # left padding: every prompt ends where generation starts
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        with torch.no_grad():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **call.generate)
        for row, i in enumerate(order[start : start + call.batch_size]):
            outputs[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True)
    return [outputs[i] for i in range(len(token_ids))]


class GenerationPlan(_Strict):
    backend: Literal["vllm", "hf"]
    thinking: bool  # enable_thinking was given to the chat template
    vllm: VllmCall | None = None
    hf: HfCall | None = None


def plan_generation(
    config: EvalConfig, checkpoints: Sequence[Path], prompts: Sequence[str], backend: Literal["vllm", "hf"]
) -> tuple[GenerationPlan, Any]:
    """The backend calls that generate ``prompts`` with each of ``checkpoints``, and the tokenizer; nothing runs.

    Every adapter's rank is checked first, before any model is loaded.
    """
    from transformers import AutoTokenizer

    for checkpoint in checkpoints:
        rank = read_adapter_rank(checkpoint)
        if rank > config.generation.max_lora_rank:
            raise EvalConfigError(
                f"{checkpoint}/adapter_config.json: LoRA rank {rank} exceeds the limit of "
                f"{config.generation.max_lora_rank}; train with [lora].rank <= {config.generation.max_lora_rank}"
            )
    tokenizer = AutoTokenizer.from_pretrained(config.model.folder(), trust_remote_code=config.model.trust_remote_code)
    limit = config.generation.max_model_len - config.generation.max_tokens
    # A prompt longer than the context keeps its end (the question and the generation prompt).
    token_ids = [ids[-limit:] for ids in prompt_token_ids(tokenizer, prompts, config.prompt)]
    thinking = bool(template_options(tokenizer, config.prompt).get("enable_thinking"))
    import torch

    if backend == "vllm":
        call = vllm_call(config, checkpoints, token_ids, gpus=torch.cuda.device_count())
        return GenerationPlan(backend=backend, thinking=thinking, vllm=call), tokenizer
    hf = hf_call(config, checkpoints, token_ids, tokenizer, cuda=torch.cuda.is_available())
    return GenerationPlan(backend=backend, thinking=thinking, hf=hf), tokenizer


def run_plan(plan: GenerationPlan, tokenizer: Any) -> Iterator[list[str]]:
    """Run the planned calls: the outputs of each checkpoint in turn, each in the order of the prompts."""
    if plan.vllm is not None:
        return _generate_vllm(plan.vllm)
    assert plan.hf is not None
    return _generate_hf(plan.hf, tokenizer)


def generate_many(
    config: EvalConfig, checkpoints: Sequence[Path], prompts: Sequence[str]
) -> tuple[Iterator[list[str]], GenerationPlan]:
    """Completions of ``prompts`` by the base model with each LoRA adapter of ``checkpoints`` in turn.

    Returns (the outputs of each checkpoint in the order of ``checkpoints``, each in the order of ``prompts``,
    produced lazily so a caller can write each report as soon as it is ready; the plan that ran, with its backend).
    """
    plan, tokenizer = plan_generation(config, checkpoints, prompts, choose_backend(config.generation.backend))
    return run_plan(plan, tokenizer), plan


def generate(config: EvalConfig, checkpoint: Path, prompts: Sequence[str]) -> tuple[list[str], str]:
    """Completions of ``prompts`` by the base model with the LoRA adapter at ``checkpoint``.

    Returns (outputs in the order of ``prompts``, the backend used).
    """
    outputs, plan = generate_many(config, [checkpoint], prompts)
    return next(outputs), plan.backend
