"""The small causal LM of the puzzles substrate: special tokens, model config, checkpoints and greedy decoding.

The tokenizer is built by :mod:`evotrain.puzzles.tokenizer` (at base training) and read back from
``tokenizer.json``. This module is sealed into every puzzles substrate (evotrain.substrate.seal), so it imports
nothing of evotrain: the generators, with the wordings and rules the external split is drawn from, stay out.

The model format between training and evaluation is:

* a model folder (``model/base`` in the substrate, or a checkpoint of full fine-tuning) holds a transformers
  ``save_pretrained`` model plus ``tokenizer.json``;
* a LoRA checkpoint holds a peft adapter (``adapter_config.json``) and is applied on top of ``model/base``.

A model sees ``prompt + "\\n"`` and must continue with its answer, ending with the end-of-sequence token; the
frozen evaluation extracts the answer with :func:`evotrain.puzzles.answers.extract_answer`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

transformers.utils.logging.disable_progress_bar()
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
# Sizes of the small Llama; "tiny" is the CPU default.
PROFILES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 256},
    "micro": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
}
MAX_POSITIONS = 384
# Plain matmul attention, which every figure in docs/puzzles.md was measured with. At this size it is as fast as
# the fused scaled-dot-product kernel on CPU (benchmarks/puzzles_speed.py: ratio 0.99-1.03), not a speed-up.
ATTENTION = "eager"


def load_tokenizer(model_dir: Path) -> Tokenizer:
    return Tokenizer.from_file(str(model_dir / "tokenizer.json"))


def make_model(profile: str, vocab_size: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    size = PROFILES[profile]
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=size["hidden_size"],
        num_hidden_layers=size["num_hidden_layers"],
        num_attention_heads=size["num_attention_heads"],
        num_key_value_heads=size["num_attention_heads"],
        intermediate_size=size["intermediate_size"],
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
    )
    return LlamaForCausalLM(config)


def model_input(prompt: str) -> str:
    """The text a model is conditioned on for one puzzle."""
    return prompt + "\n"


def encode_prompt(tok: Tokenizer, prompt: str) -> list[int]:
    return [BOS_ID, *tok.encode(model_input(prompt)).ids]


def load_model(checkpoint: Path, base_dir: Path) -> PreTrainedModel:
    """A model ready for inference: a full checkpoint, or ``base_dir`` with the LoRA adapter in ``checkpoint``."""
    if (checkpoint / "adapter_config.json").exists():
        from peft import PeftModel

        base = LlamaForCausalLM.from_pretrained(base_dir, attn_implementation=ATTENTION)
        model: Any = PeftModel.from_pretrained(base, checkpoint).merge_and_unload()
    else:
        model = LlamaForCausalLM.from_pretrained(checkpoint, attn_implementation=ATTENTION)
    model.eval()
    return model


@torch.no_grad()
def greedy_generate(
    model: PreTrainedModel,
    tok: Tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
) -> list[str]:
    """Greedy continuations of ``prompts`` (batched, left-padded, KV cache), cut at end-of-sequence."""
    outputs: list[str] = [""] * len(prompts)
    encoded = [encode_prompt(tok, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        new_tokens = min(max_new_tokens, MAX_POSITIONS - width)
        out = model.generate(  # type: ignore[operator]
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=PAD_ID,
            eos_token_id=EOS_ID,
        )
        for row, i in enumerate(batch):
            generated = out[row, width:].tolist()
            if EOS_ID in generated:
                generated = generated[: generated.index(EOS_ID)]
            outputs[i] = tok.decode([t for t in generated if t != PAD_ID])
    return outputs


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
