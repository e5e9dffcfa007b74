"""Frozen: the evaluation settings, the prompt, and the generation backends (vLLM on GPU, HF generate elsewhere).

The prompt is the model's chat template applied to one user turn: the item's prompt followed by the challenge's
suffix asking for the answer in ``\\boxed{}``. train.py builds its training prompts with ``chat_messages`` from
here, so training and evaluation see the same text. Decoding is greedy (temperature 0, top_p 1).

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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    max_tokens: int = Field(default=256, ge=1)
    max_model_len: int = Field(default=4096, ge=16)
    max_lora_rank: int = Field(default=32, ge=1, le=32)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    hf_batch_size: int = Field(default=8, ge=1)


class PromptConfig(_Strict):
    suffix: str
    system: str | None = None  # a system message before the user turn; None: whatever the template does


class EvalConfig(_Strict):
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
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EvalConfigError(f"{path}: {problems}") from None


def chat_messages(prompt: str, config: PromptConfig) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": config.system}] if config.system is not None else []
    return [*messages, {"role": "user", "content": prompt + config.suffix}]


def render_prompt(tokenizer: Any, prompt: str, config: PromptConfig) -> str:
    """The exact text the model continues: the chat template with the generation prompt opened."""
    text: str = tokenizer.apply_chat_template(chat_messages(prompt, config), tokenize=False, add_generation_prompt=True)
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


def _generate_vllm(config: EvalConfig, checkpoints: list[Path], token_ids: list[list[int]]) -> Iterator[list[str]]:
    """One engine for every checkpoint: each adapter is a LoRARequest of its own (engine start-up dominates)."""
    import torch
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(
        model=str(config.model.folder()),
        enable_lora=True,
        max_lora_rank=config.generation.max_lora_rank,
        max_loras=1,
        enable_prefix_caching=True,
        max_model_len=config.generation.max_model_len,
        gpu_memory_utilization=config.generation.gpu_memory_utilization,
        tensor_parallel_size=max(1, torch.cuda.device_count()),
        trust_remote_code=config.model.trust_remote_code,
        seed=0,
    )
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=config.generation.max_tokens)
    prompts: Any = [{"prompt_token_ids": ids} for ids in token_ids]
    for number, checkpoint in enumerate(checkpoints, start=1):
        lora = LoRARequest(f"candidate-{number}", number, str(checkpoint.resolve()))
        results = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
        yield [r.outputs[0].text for r in results]


def _generate_hf(
    config: EvalConfig, checkpoints: list[Path], token_ids: list[list[int]], tokenizer: Any
) -> Iterator[list[str]]:
    """The base model loaded once; each checkpoint's adapter is loaded beside the others and made the active one."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    base = AutoModelForCausalLM.from_pretrained(
        config.model.folder(),
        dtype=torch.bfloat16 if cuda else torch.float32,
        trust_remote_code=config.model.trust_remote_code,
    )
    model: Any = None
    for number, checkpoint in enumerate(checkpoints):
        name = f"c{number}"
        if model is None:
            model = PeftModel.from_pretrained(base, checkpoint, adapter_name=name).eval()
        else:
            model.load_adapter(checkpoint, adapter_name=name)
            model.set_adapter(name)
        model.to(device)
        yield _greedy_hf(model, config, token_ids, tokenizer, device)


def _greedy_hf(model: Any, config: EvalConfig, token_ids: list[list[int]], tokenizer: Any, device: Any) -> list[str]:
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs: dict[int, str] = {}
    # Similar lengths batch together (less padding); results go back to the input order.
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    size = config.generation.hf_batch_size
    for start in range(0, len(order), size):
        batch = [token_ids[i] for i in order[start : start + size]]
        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):  # left padding: every prompt ends where generation starts
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
        with torch.no_grad():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=config.generation.max_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        for row, i in enumerate(order[start : start + size]):
            outputs[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True)
    return [outputs[i] for i in range(len(token_ids))]


def generate_many(
    config: EvalConfig, checkpoints: Sequence[Path], prompts: Sequence[str]
) -> tuple[Iterator[list[str]], str]:
    """Greedy completions of ``prompts`` by the base model with each LoRA adapter of ``checkpoints`` in turn.

    Returns (the outputs of each checkpoint in the order of ``checkpoints``, each in the order of ``prompts``,
    produced lazily so a caller can write each report as soon as it is ready; the backend used). Every adapter's
    rank is checked before the model is loaded.
    """
    from transformers import AutoTokenizer

    for checkpoint in checkpoints:
        rank = read_adapter_rank(checkpoint)
        if rank > config.generation.max_lora_rank:
            raise EvalConfigError(
                f"{checkpoint}/adapter_config.json: LoRA rank {rank} exceeds the limit of "
                f"{config.generation.max_lora_rank}; train with [lora].rank <= {config.generation.max_lora_rank}"
            )
    backend = choose_backend(config.generation.backend)
    tokenizer = AutoTokenizer.from_pretrained(config.model.folder(), trust_remote_code=config.model.trust_remote_code)
    limit = config.generation.max_model_len - config.generation.max_tokens
    # A prompt longer than the context keeps its end (the question and the generation prompt).
    token_ids = [ids[-limit:] for ids in prompt_token_ids(tokenizer, prompts, config.prompt)]
    if backend == "vllm":
        return _generate_vllm(config, list(checkpoints), token_ids), backend
    return _generate_hf(config, list(checkpoints), token_ids, tokenizer), backend


def generate(config: EvalConfig, checkpoint: Path, prompts: Sequence[str]) -> tuple[list[str], str]:
    """Greedy completions of ``prompts`` by the base model with the LoRA adapter at ``checkpoint``.

    Returns (outputs in the order of ``prompts``, the backend used).
    """
    outputs, backend = generate_many(config, [checkpoint], prompts)
    return next(outputs), backend
