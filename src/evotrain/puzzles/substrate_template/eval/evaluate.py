"""Frozen evaluation: greedy-decode one checkpoint on a split and write the evaluation report.

Scoring is evotrain.puzzles.answers (the challenge's extraction and verification rules), shared with the
external target. Do not edit: candidates are only comparable if they are scored by the same harness.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from evotrain.puzzles.answers import extract_answer, verify
from evotrain.puzzles.lm import greedy_generate, load_model, load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "model" / "base"
MAX_NEW_TOKENS = 48


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    items = [json.loads(line) for line in (ROOT / "data" / f"{args.split}.jsonl").read_text().splitlines()]
    model = load_model(args.checkpoint, BASE)
    outputs = greedy_generate(
        model, load_tokenizer(BASE), [it["prompt"] for it in items], max_new_tokens=MAX_NEW_TOKENS
    )
    scored = []
    for it, out in zip(items, outputs, strict=True):
        answer = extract_answer(out)
        scored.append({"id": it["id"], "domain": it["family"], "score": float(verify(answer, it["answer"]))})
    domains: dict[str, dict[str, float]] = {}
    for family in sorted({it["family"] for it in items}):
        scores = [s["score"] for s in scored if s["domain"] == family]
        domains[family] = {"score": sum(scores) / len(scores), "n": len(scores)}
    report = {
        "metric": "accuracy",
        "domains": domains,
        "items": scored,
        "overall": sum(s["score"] for s in scored) / len(scored),
        "outputs": {it["id"]: out for it, out in zip(items, outputs, strict=True)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({f: round(d["score"], 3) for f, d in domains.items()}))


if __name__ == "__main__":
    main()
