"""Frozen evaluation: generate with one checkpoint on a split and write the evaluation report.

Scoring is evotrain.puzzles.answers (the challenge's answer extraction and verification), the one implementation
shared with the external target. Do not edit: candidates are only comparable when one harness scores them.

Report: {"metric", "domains": {family: {"score", "n"}}, "items": [{"id", "domain", "score"}], "overall",
"outputs": {id: text}, "backend"}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation import ROOT, EvalConfigError, generate, load_config

from evotrain.errors import EvotrainError
from evotrain.fileio import atomic_write_json
from evotrain.hf_lora.csvdata import read_items
from evotrain.puzzles.answers import extract_answer, verify


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--split", default="dev", help="data/<split>.csv with columns id,prompt,answer,family")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        config = load_config()
        items = read_items(ROOT / "data" / f"{args.split}.csv", answers=True, families=True)
        start = time.time()
        outputs, backend = generate(config, args.checkpoint, [it.prompt for it in items])
    except (EvotrainError, EvalConfigError) as exc:
        sys.exit(f"evaluate: {exc}")
    results: list[tuple[str, str, float]] = []  # (id, family, score)
    for it, out in zip(items, outputs, strict=True):
        assert it.answer is not None and it.family is not None  # read_items required both
        results.append((it.id, it.family, float(verify(extract_answer(out), it.answer))))
    domains: dict[str, dict[str, float]] = {}
    for family in sorted({family for _, family, _ in results}):
        scores = [score for _, f, score in results if f == family]
        domains[family] = {"score": sum(scores) / len(scores), "n": len(scores)}
    scored = [{"id": i, "domain": f, "score": score} for i, f, score in results]
    report = {
        "metric": "accuracy",
        "domains": domains,
        "items": scored,
        "overall": sum(score for _, _, score in results) / len(results),
        "outputs": {it.id: out for it, out in zip(items, outputs, strict=True)},
        "backend": backend,
        "generation_s": round(time.time() - start, 2),
    }
    atomic_write_json(args.out, report)
    print(f"{backend}: " + ", ".join(f"{f} {d['score']:.3f}" for f, d in domains.items()))


if __name__ == "__main__":
    main()
