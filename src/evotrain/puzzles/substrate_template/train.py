"""Post-training: supervised fine-tuning of the base model on the pipeline's data (LoRA or full).

Saves a checkpoint every ``checkpoint_every`` steps (and at the end) under --checkpoints/step-NNNNN; the frozen
evaluation (eval/evaluate.py) scores each one on dev. A LoRA checkpoint is a peft adapter on model/base.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent / "vendor"))  # evotrain as sealed in the substrate

from evotrain.puzzles.lm import ATTENTION, BOS_ID, EOS_ID, PAD_ID, model_input

BASE = Path(__file__).resolve().parent / "model" / "base"
# Each batch is sorted by length and run as this many micro-batches whose gradients add up to the whole batch's
# (the loss is normalised by the batch's answer-token count): the same update with about 30 % fewer tokens to compute.
MICRO_BATCHES = 3


def encode(tok: Tokenizer, row: dict[str, str], loss_on_prompt: bool) -> tuple[list[int], list[int]]:
    prompt = [BOS_ID, *tok.encode(model_input(row["prompt"])).ids]
    answer = [*tok.encode(row["completion"]).ids, EOS_ID]
    labels = (prompt if loss_on_prompt else [-100] * len(prompt)) + answer
    return prompt + answer, labels


def collate(examples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), PAD_ID, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
    return {"input_ids": ids, "attention_mask": (ids != PAD_ID).long(), "labels": labels}


def micro_batches(examples: list[tuple[list[int], list[int]]], parts: int) -> list[dict[str, torch.Tensor]]:
    ordered = sorted(examples, key=lambda e: len(e[0]))
    size = math.ceil(len(ordered) / parts)
    return [collate(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def target_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens the loss is taken over: the labels after the first position (each predicts the next token)."""
    return int((batch["labels"][:, 1:] != -100).sum())


def train_step(model: Any, examples: list[tuple[list[int], list[int]]]) -> tuple[float, int]:
    """Forward and backward over one batch in micro-batches; returns the batch's mean loss and its token count."""
    parts = micro_batches(examples, MICRO_BATCHES)
    n_targets = sum(target_tokens(b) for b in parts)
    total = 0.0
    for batch in parts:
        loss = model(**batch, num_items_in_batch=n_targets).loss
        loss.backward()
        total += loss.item()
    return total, sum(int(b["attention_mask"].sum()) for b in parts)


def lr_at(step: int, cfg: dict[str, Any]) -> float:
    warmup, total = cfg["warmup_steps"], cfg["steps"]
    if step < warmup:
        return float(cfg["lr"] * (step + 1) / warmup)
    progress = (step - warmup) / max(1, total - warmup)
    decay = {"constant": 1.0, "linear": 1.0 - progress, "cosine": 0.5 * (1 + math.cos(math.pi * progress))}
    return float(cfg["lr"] * decay[cfg["schedule"]])


def build_model(recipe: dict[str, Any]) -> Any:
    model = LlamaForCausalLM.from_pretrained(BASE, attn_implementation=ATTENTION)
    if recipe["train"]["method"] == "full":
        return model
    from peft import LoraConfig, get_peft_model

    lora = recipe["lora"]
    config = LoraConfig(
        r=lora["rank"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["targets"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args()

    recipe = tomllib.loads(args.recipe.read_text())
    cfg = recipe["train"]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    tok = Tokenizer.from_file(str(BASE / "tokenizer.json"))
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    examples = [encode(tok, row, cfg["loss_on_prompt"]) for row in rows]
    model = build_model(recipe)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])

    start, losses, tokens = time.time(), [], 0
    for step in range(cfg["steps"]):
        first = step * cfg["batch_size"]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss, seen = train_step(model, [examples[(first + i) % len(examples)] for i in range(cfg["batch_size"])])
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss)
        tokens += seen
        done = step + 1
        if done % cfg["checkpoint_every"] == 0 or done == cfg["steps"]:
            out = args.checkpoints / f"step-{done:05d}"
            model.save_pretrained(out)
            print(f"step {done}: loss {sum(losses[-10:]) / len(losses[-10:]):.4f} -> {out}", flush=True)

    if args.summary:
        summary = {
            "steps": cfg["steps"],
            "final_loss": sum(losses[-10:]) / len(losses[-10:]),
            "tokens_seen": tokens,
            "train_wall_s": time.time() - start,
            "trainable_params": sum(p.numel() for p in params),
        }
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
