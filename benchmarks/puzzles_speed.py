"""Where a puzzles trial spends its time, as ratios against a baseline measured in the same process.

    python benchmarks/puzzles_speed.py [--steps 40] [--threads 1]

Builds the tiny substrate (cached base), draws the default recipe's training set, and measures on one thread:

* a training step: one padded batch against 3 length-sorted micro-batches (train.py's MICRO_BATCHES), and fused
  SDPA attention against eager attention (lm.ATTENTION); the padding efficiency of both batchings;
* greedy decoding of the dev split at batch 32 (evaluate.py's), SDPA against eager;
* a fresh interpreter importing what evaluate.py imports (the start-up `evaluate_all` pays once, not per checkpoint).

Prints a Markdown table (docs/puzzles.md quotes it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaForCausalLM

from evotrain.puzzles.build import build_substrate
from evotrain.puzzles.lm import greedy_generate, load_tokenizer


def _train_module(substrate: Path) -> Any:
    spec = importlib.util.spec_from_file_location("puzzles_train", substrate / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _step_seconds(train: Any, recipe: dict[str, Any], examples: list[Any], steps: int, attention: str) -> float:
    torch.manual_seed(0)
    train.ATTENTION = attention  # build_model loads the base with train.py's ATTENTION
    model = train.build_model(recipe)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    size = recipe["train"]["batch_size"]

    def run(n: int) -> None:
        for step in range(n):
            train.train_step(model, examples[step * size : (step + 1) * size])
            opt.step()
            opt.zero_grad(set_to_none=True)

    run(3)  # warm-up
    start = time.perf_counter()
    run(steps)
    return (time.perf_counter() - start) / steps


def _padding_efficiency(train: Any, examples: list[Any], size: int, parts: int) -> float:
    real = padded = 0
    for i in range(0, len(examples) - size + 1, size):
        for batch in train.micro_batches(examples[i : i + size], parts):
            real += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
    return real / padded


def _decode_seconds(substrate: Path, attention: str) -> float:
    base = substrate / "model" / "base"
    model = LlamaForCausalLM.from_pretrained(base, attn_implementation=attention).eval()
    items = [json.loads(line) for line in (substrate / "data" / "dev.jsonl").read_text().splitlines()]
    prompts = [it["prompt"] for it in items]
    tok = load_tokenizer(base)
    greedy_generate(model, tok, prompts[:32], max_new_tokens=48)  # warm-up
    start = time.perf_counter()
    greedy_generate(model, tok, prompts, max_new_tokens=48, batch_size=32)
    return time.perf_counter() - start


def _import_seconds() -> float:
    code = "import torch, peft; from evotrain.puzzles.lm import load_model"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="puzzles-speed-"))
    built = build_substrate(tmp / "substrate", answers_path=tmp / "answers.jsonl")
    sub = built.path
    train = _train_module(sub)
    recipe = tomllib.loads((sub / "recipe.toml").read_text())
    pipeline = importlib.util.spec_from_file_location("puzzles_pipeline", sub / "pipeline" / "build_data.py")
    assert pipeline is not None and pipeline.loader is not None
    build_data = importlib.util.module_from_spec(pipeline)
    pipeline.loader.exec_module(build_data)
    tok = load_tokenizer(sub / "model" / "base")
    rows = build_data.build(recipe, seed=0)
    examples = [train.encode(tok, row, False) for row in rows]
    size = recipe["train"]["batch_size"]

    parts = train.MICRO_BATCHES
    rows_out = []
    train.MICRO_BATCHES = 1
    one_sdpa = _step_seconds(train, recipe, examples, args.steps, "sdpa")
    train.MICRO_BATCHES = parts
    micro_sdpa = _step_seconds(train, recipe, examples, args.steps, "sdpa")
    micro_eager = _step_seconds(train, recipe, examples, args.steps, "eager")
    rows_out.append(
        f"| training step, one padded batch → {parts} micro-batches (SDPA) | {one_sdpa:.3f} s | {micro_sdpa:.3f} s "
        f"| {micro_sdpa / one_sdpa:.2f} |"
    )
    rows_out.append(
        f"| training step, SDPA → eager ({parts} micro-batches) | {micro_sdpa:.3f} s | {micro_eager:.3f} s "
        f"| {micro_eager / micro_sdpa:.2f} |"
    )
    eff_one = _padding_efficiency(train, examples, size, 1)
    eff_micro = _padding_efficiency(train, examples, size, parts)
    rows_out.append(f"| padding efficiency (real / computed tokens) | {eff_one:.2f} | {eff_micro:.2f} | — |")
    dec_sdpa, dec_eager = _decode_seconds(sub, "sdpa"), _decode_seconds(sub, "eager")
    rows_out.append(
        f"| decoding the {built.counts['dev']} dev items, batch 32, SDPA → eager | {dec_sdpa:.2f} s | "
        f"{dec_eager:.2f} s | {dec_eager / dec_sdpa:.2f} |"
    )
    imports = _import_seconds()
    rows_out.append(
        f"| a fresh interpreter importing torch + transformers + peft (paid once by `evaluate_all`) | "
        f"{imports:.1f} s | — | — |"
    )
    print(f"{args.threads} thread(s), {args.steps} timed steps, substrate {built.fingerprint[:12]}\n")
    print("| measurement | baseline | changed | ratio |\n|---|---|---|---|")
    print("\n".join(rows_out))


if __name__ == "__main__":
    main()
