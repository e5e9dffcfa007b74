"""Frozen prediction: greedy-decode one checkpoint on the external inputs (no labels here) for submission.

Writes {"predictions": {item id: model output}}; the external target extracts and verifies the answers with
evotrain.puzzles.answers, the same rules as the dev evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "vendor"))  # evotrain as sealed in the substrate

from evotrain.puzzles.lm import greedy_generate, load_model, load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "model" / "base"
MAX_NEW_TOKENS = 48


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, default=ROOT / "data" / "external_inputs.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    items = [json.loads(line) for line in args.inputs.read_text().splitlines()]
    model = load_model(args.checkpoint, BASE)
    outputs = greedy_generate(
        model, load_tokenizer(BASE), [it["prompt"] for it in items], max_new_tokens=MAX_NEW_TOKENS
    )
    predictions = {it["id"]: out for it, out in zip(items, outputs, strict=True)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"predictions": predictions}, indent=1) + "\n")
    print(f"wrote {len(predictions)} predictions to {args.out}")


if __name__ == "__main__":
    main()
