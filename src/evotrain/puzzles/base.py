"""The deterministic base-training step: a small Llama pre-trained on "Wonderland text".

The base corpus is made of puzzle *documents* from the dev distribution (own seeds): a prompt followed by
"Answer: <answer>", with the language-modelling loss on every token. The base model so learns the families'
rules but not the challenge's answer format (``\\boxed{...}``, optionally after a worked trace): that, and
everything the recipe changes (data mix, augmentations, schedule, capacity), is post-training's job.

The result is cached by a fingerprint of the configuration (and ``BASE_VERSION``, to bump whenever the
generators, the splits' base mix or the tokenizer change), so a second substrate build is instant.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict

from evotrain.puzzles.generators import FAMILIES, generate
from evotrain.puzzles.lm import BOS_ID, EOS_ID, PAD_ID, make_model, model_input
from evotrain.puzzles.splits import MIXES
from evotrain.puzzles.tokenizer import build_tokenizer

BASE_VERSION = 4


class BaseConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    profile: str = "tiny"
    steps: int = 5000
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 100
    seed: int = 0
    threads: int = 2  # not in the fingerprint: changes the speed (and at most float rounding), not the recipe

    def fingerprint(self) -> str:
        payload = self.model_dump(exclude={"threads"}) | {"version": BASE_VERSION}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# The families in the order base documents cycle through them. bit_manipulation comes twice: a 0.7M-parameter
# model needs about twice the exposure of the other families before it starts to induce bit rules from examples
# (measured: with an equal share it stayed at 0.05 dev accuracy after post-training).
BASE_FAMILY_CYCLE: tuple[str, ...] = (*FAMILIES, "bit_manipulation")


def document(index: int, seed: int) -> str:
    """Base-corpus document ``index``: a puzzle and its answer in plain form ("Answer: ..."), no ``\\boxed``."""
    family = BASE_FAMILY_CYCLE[index % len(BASE_FAMILY_CYCLE)]
    key = f"{seed}/base/{family}/{index}"
    d = MIXES["base"][family].draw(random.Random(key + "/difficulty"))
    p = generate(family, key, d)
    return model_input(p.prompt) + "Answer: " + p.answer


def cache_dir() -> Path:
    root = os.environ.get("EVOTRAIN_CACHE") or Path.home() / ".cache" / "evotrain"
    return Path(root) / "puzzles"


def _batch(docs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(d) for d in docs)
    ids = torch.full((len(docs), width), PAD_ID, dtype=torch.long)
    for row, d in enumerate(docs):
        ids[row, : len(d)] = torch.tensor(d)
    labels = ids.masked_fill(ids == PAD_ID, -100)
    return ids, labels


def train_base(
    cfg: BaseConfig,
    dest: Path,
    progress: Callable[[str], None] | None = None,
    every: int = 500,
    snapshot_every: int = 0,
) -> dict[str, float]:
    """Train the base model from scratch and save it (model + tokenizer.json) to ``dest``.

    ``snapshot_every`` > 0 also saves ``dest/step-<n>`` snapshots along the way (to study the base run).
    """
    say = progress or (lambda _msg: None)
    torch.set_num_threads(cfg.threads)
    tok = build_tokenizer()
    model = make_model(cfg.profile, tok.get_vocab_size(), cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.98))
    start, loss_avg = time.time(), 0.0
    for step in range(cfg.steps):
        scale = min(1.0, (step + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * scale
        first = step * cfg.batch_size
        docs = [[BOS_ID, *tok.encode(document(i, cfg.seed)).ids, EOS_ID] for i in range(first, first + cfg.batch_size)]
        ids, labels = _batch(docs)
        loss = model(input_ids=ids, attention_mask=(ids != PAD_ID).long(), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_avg = 0.98 * loss_avg + 0.02 * loss.item() if step else loss.item()
        if (step + 1) % every == 0 or step + 1 == cfg.steps:
            say(f"base training: step {step + 1}/{cfg.steps}, loss {loss_avg:.3f}, {time.time() - start:.0f}s")
        if snapshot_every and (step + 1) % snapshot_every == 0:
            model.save_pretrained(dest / f"step-{step + 1:06d}")
            tok.save(str(dest / f"step-{step + 1:06d}" / "tokenizer.json"))
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tok.save(str(dest / "tokenizer.json"))
    summary = {"steps": cfg.steps, "loss": loss_avg, "wall_s": time.time() - start}
    (dest / "base_training.json").write_text(
        json.dumps({"config": cfg.model_dump(), "fingerprint": cfg.fingerprint(), **summary}, indent=2) + "\n"
    )
    return summary


# The package ships the default profile's base checkpoint (about 3 MB), so a fresh machine need not spend
# minutes of base training; it is used only when its recorded fingerprint matches the configuration.
SHIPPED = Path(__file__).resolve().parent / "substrate_template" / "model" / "base"


def shipped_fingerprint() -> str | None:
    record = SHIPPED / "base_training.json"
    if not record.exists():
        return None
    return str(json.loads(record.read_text())["fingerprint"])


def base_checkpoint(cfg: BaseConfig, progress: Callable[[str], None] | None = None) -> Path:
    """The folder of the base checkpoint for ``cfg``: shipped with the package, cached, or trained now."""
    if shipped_fingerprint() == cfg.fingerprint():
        return SHIPPED
    dest = cache_dir() / f"base-{cfg.fingerprint()}"
    if (dest / "base_training.json").exists():
        return dest
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    train_base(cfg, tmp, progress)
    if dest.exists():  # a concurrent build finished first; both results are identical
        shutil.rmtree(tmp)
    else:
        tmp.rename(dest)
    return dest


if __name__ == "__main__":
    import sys

    steps = int(sys.argv[1]) if len(sys.argv) > 1 else BaseConfig().steps
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else cache_dir() / "manual"
    print(train_base(BaseConfig(steps=steps), out, print, every=250, snapshot_every=1000))
