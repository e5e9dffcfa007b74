"""Frozen evaluation: greedy-decode checkpoints on a split and write one evaluation report per checkpoint.

    evaluate.py --checkpoint DIR --out REPORT.json         one checkpoint (the `evaluate` command)
    evaluate.py --checkpoints DIR --out FOLDER             every checkpoint in DIR, one FOLDER/<name>.json each,
                                                           in one process (the `evaluate_all` command)

Scoring is evotrain.puzzles.answers (the challenge's extraction and verification rules; its copy sealed in
vendor/), shared with the external target. Do not edit: candidates are only comparable if they are scored by the
same harness.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "vendor"))  # evotrain as sealed in the substrate

from evotrain.fileio import atomic_write_text
from evotrain.puzzles.answers import extract_answer, verify
from evotrain.puzzles.lm import greedy_generate, load_model, load_tokenizer
from evotrain.substrate.spec import checkpoint_folders

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "model" / "base"
MAX_NEW_TOKENS = 48


def report(items: list[dict[str, Any]], outputs: list[str]) -> dict[str, Any]:
    scored = []
    for it, out in zip(items, outputs, strict=True):
        answer = extract_answer(out)
        scored.append({"id": it["id"], "domain": it["family"], "score": float(verify(answer, it["answer"]))})
    domains: dict[str, dict[str, float]] = {}
    for family in sorted({it["family"] for it in items}):
        scores = [s["score"] for s in scored if s["domain"] == family]
        domains[family] = {"score": sum(scores) / len(scores), "n": len(scores)}
    return {
        "metric": "accuracy",
        "domains": domains,
        "items": scored,
        "overall": sum(s["score"] for s in scored) / len(scored),
        "outputs": {it["id"]: out for it, out in zip(items, outputs, strict=True)},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, help="one checkpoint folder; --out is the report file")
    which.add_argument("--checkpoints", type=Path, help="a folder of checkpoints; --out is a folder of reports")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    if args.checkpoint is not None:
        jobs = [(args.checkpoint, args.out)]
    else:
        jobs = [(p, args.out / f"{p.name}.json") for p in checkpoint_folders(args.checkpoints)]
    items = [json.loads(line) for line in (ROOT / "data" / f"{args.split}.jsonl").read_text().splitlines()]
    tok = load_tokenizer(BASE)
    for checkpoint, out in jobs:
        model = load_model(checkpoint, BASE)
        outputs = greedy_generate(model, tok, [it["prompt"] for it in items], max_new_tokens=MAX_NEW_TOKENS)
        result = report(items, outputs)
        atomic_write_text(out, json.dumps(result, indent=1) + "\n")  # a report is there whole or not at all
        print(checkpoint.name, json.dumps({f: round(d["score"], 3) for f, d in result["domains"].items()}))


if __name__ == "__main__":
    main()
