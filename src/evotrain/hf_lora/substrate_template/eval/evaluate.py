"""Frozen evaluation: generate with checkpoints on a split and write one evaluation report per checkpoint.

    evaluate.py --checkpoint DIR --out REPORT.json      one checkpoint (the `evaluate` command)
    evaluate.py --checkpoints DIR --out FOLDER          every checkpoint in DIR, one FOLDER/<name>.json each, with
                                                        one model or vLLM engine (the `evaluate_all` command)

Scoring is evotrain.puzzles.answers (the challenge's answer extraction and verification; its copy sealed in
vendor/), the one implementation shared with the external target. Do not edit: candidates are only comparable
when one harness scores them.

Report: {"metric", "domains": {family: {"score", "n"}}, "items": [{"id", "domain", "score"}], "overall",
"outputs": {id: text}, "backend", "generation_s", "profile" (the evaluation profile of eval/config.toml),
"thinking" (whether the chat template was given enable_thinking=True)}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "vendor"))  # evotrain as sealed in the substrate
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation import ROOT, EvalConfigError, generate_many, load_config

from evotrain.errors import EvotrainError
from evotrain.fileio import atomic_write_json
from evotrain.hf_lora.csvdata import Item, read_items
from evotrain.puzzles.answers import extract_answer, verify
from evotrain.substrate.spec import checkpoint_folders


def make_report(items: list[Item], outputs: list[str], backend: str, generation_s: float) -> dict[str, Any]:
    results: list[tuple[str, str, float]] = []  # (id, family, score)
    for it, out in zip(items, outputs, strict=True):
        assert it.answer is not None and it.family is not None  # read_items required both
        results.append((it.id, it.family, float(verify(extract_answer(out), it.answer))))
    domains: dict[str, dict[str, float]] = {}
    for family in sorted({family for _, family, _ in results}):
        scores = [score for _, f, score in results if f == family]
        domains[family] = {"score": sum(scores) / len(scores), "n": len(scores)}
    return {
        "metric": "accuracy",
        "domains": domains,
        "items": [{"id": i, "domain": f, "score": score} for i, f, score in results],
        "overall": sum(score for _, _, score in results) / len(results),
        "outputs": {it.id: out for it, out in zip(items, outputs, strict=True)},
        "backend": backend,
        "generation_s": round(generation_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, help="one checkpoint folder; --out is the report file")
    which.add_argument("--checkpoints", type=Path, help="a folder of checkpoints; --out is a folder of reports")
    parser.add_argument("--split", default="dev", help="data/<split>.csv with columns id,prompt,answer,family")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.checkpoint is not None:
        jobs = [(args.checkpoint, args.out)]
    else:
        jobs = [(p, args.out / f"{p.name}.json") for p in checkpoint_folders(args.checkpoints)]
    try:
        config = load_config()
        items = read_items(ROOT / "data" / f"{args.split}.csv", answers=True, families=True)
        start = time.time()
        outputs, plan = generate_many(config, [checkpoint for checkpoint, _ in jobs], [it.prompt for it in items])
        for (checkpoint, out), texts in zip(jobs, outputs, strict=True):
            report = make_report(items, texts, plan.backend, time.time() - start)
            atomic_write_json(out, report | {"profile": config.profile, "thinking": plan.thinking})
            scores = ", ".join(f"{f} {d['score']:.3f}" for f, d in report["domains"].items())
            print(f"{checkpoint.name} {plan.backend}: {scores}")
            start = time.time()
    except (EvotrainError, EvalConfigError) as exc:
        sys.exit(f"evaluate: {exc}")


if __name__ == "__main__":
    main()
