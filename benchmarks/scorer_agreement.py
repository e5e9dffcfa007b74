"""Agreement of the challenge scorer (evotrain.puzzles.answers) with the scorer it replaced, on the puzzles substrate.

    PYTHONPATH=src python benchmarks/scorer_agreement.py OUT [--old-rev ffaad3d] [--seed 0]

Builds the puzzles substrate (profile tiny), trains one checkpoint of its default recipe (seed 0), and scores
with both scorers, on every split (train pool, dev, external, control), every item:

* ``gold-boxed`` / ``gold-bare``: the puzzle's own answer submitted as ``\\boxed{answer}`` and as the bare answer;
* ``base`` / ``trained``: the greedy outputs of the base checkpoint and of the trained one (48 new tokens, as the
  frozen evaluation decodes).

The old scorer is read from git (``--old-rev``, the last revision with the old rules). Prints a table (items,
agreement, accuracy old -> new) and writes every item where the verdicts differ to OUT/scorer_disagreements.jsonl.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from puzzles_trial import make_sandbox, run

from evotrain.puzzles import answers as new
from evotrain.puzzles.build import build_substrate
from evotrain.puzzles.lm import greedy_generate, load_model, load_tokenizer
from evotrain.puzzles.score import load_answers

REPO = Path(__file__).resolve().parent.parent
MAX_NEW_TOKENS = 48  # eval/evaluate.py's


def old_scorer(rev: str, tmp: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:src/evotrain/puzzles/answers.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = tmp / "old_answers.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_answers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def splits(substrate: Path, answers: Path) -> dict[str, list[dict[str, str]]]:
    """{split: [{"id", "family", "prompt", "answer"}]} for the train pool, dev, external and control."""

    def jsonl(path: Path) -> list[dict[str, str]]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    hidden = {r["id"]: r for r in jsonl(substrate / "data" / "external_inputs.jsonl")}
    out = {"train": jsonl(substrate / "data" / "train_pool.jsonl"), "dev": jsonl(substrate / "data" / "dev.jsonl")}
    for split in ("external", "control"):
        out[split] = [{**hidden[i], "answer": r.answer} for i, r in load_answers(answers, split).items()]
    return out


def train_checkpoint(substrate: Path, work: Path) -> Path:
    sandbox, log = work / "sandbox", work / "log.txt"
    make_sandbox(substrate, sandbox, [])
    py = sys.executable
    data = str(work / "train.jsonl")
    run([py, "pipeline/build_data.py", "--recipe", "recipe.toml", "--out", data, "--seed", "0"], sandbox, log)
    checkpoints = work / "checkpoints"
    train = [py, "train.py", "--recipe", "recipe.toml", "--data", data, "--checkpoints", str(checkpoints)]
    run([*train, "--seed", "0", "--summary", str(work / "summary.json")], sandbox, log)
    return max(p for p in checkpoints.iterdir() if p.is_dir())


def compare(old: ModuleType, items: list[dict[str, str]], outputs: list[str]) -> tuple[dict[str, Any], list[dict]]:
    rows, differ = Counter[str](), []
    for item, output in zip(items, outputs, strict=True):
        old_answer, new_answer = old.extract_answer(output), new.extract_answer(output)
        old_ok, new_ok = old.verify(old_answer, item["answer"]), new.verify(new_answer, item["answer"])
        rows["old"] += old_ok
        rows["new"] += new_ok
        if old_ok != new_ok:
            differ.append(
                {"id": item["id"], "family": item["family"], "gold": item["answer"], "output": output}
                | {"old": [old_answer, old_ok], "new": [new_answer, new_ok]}
            )
    n = len(items)
    summary = {"n": n, "agree": (n - len(differ)) / n, "old": rows["old"] / n, "new": rows["new"] / n}
    return summary | {"differ": len(differ)}, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path)
    parser.add_argument("--old-rev", default="ffaad3d")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old = old_scorer(args.old_rev, tmp)
        built = build_substrate(tmp / "substrate", seed=args.seed, answers_path=tmp / "answers.jsonl")
        data = splits(built.path, built.answers_path)
        base_dir = built.path / "model" / "base"
        tok = load_tokenizer(base_dir)
        models = {"base": base_dir, "trained": train_checkpoint(built.path, tmp / "trial")}
        table, disagreements = [], []
        for split, items in data.items():
            sources = {
                "gold-boxed": ["\\boxed{" + it["answer"] + "}" for it in items],
                "gold-bare": [it["answer"] for it in items],
            }
            for name, checkpoint in models.items():
                model = load_model(checkpoint, base_dir)
                prompts = [it["prompt"] for it in items]
                sources[name] = greedy_generate(model, tok, prompts, max_new_tokens=MAX_NEW_TOKENS)
            for source, outputs in sources.items():
                summary, differ = compare(old, items, outputs)
                table.append({"split": split, "source": source, **summary})
                disagreements += [{"split": split, "source": source, **d} for d in differ]
                print(json.dumps(table[-1]), flush=True)
    (args.out / "scorer_agreement.json").write_text(json.dumps(table, indent=1) + "\n")
    with (args.out / "scorer_disagreements.jsonl").open("w") as fh:
        fh.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in disagreements)
    print("| split | outputs | items | agreement | accuracy, old scorer | accuracy, new scorer | items that differ |")
    print("|---|---|---|---|---|---|---|")
    for r in table:
        rates = [f"{r[k]:.4f}" for k in ("agree", "old", "new")]
        cells = [r["split"], r["source"], r["n"], *rates, r["differ"]]
        print("| " + " | ".join(map(str, cells)) + " |")


if __name__ == "__main__":
    main()
