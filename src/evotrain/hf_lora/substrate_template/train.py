"""Post-training: LoRA SFT of the base model with TRL's SFTTrainer and peft on the pipeline's data.

Prompts are wrapped in the model's chat template with the challenge's suffix (eval/generation.py, the same text
the evaluation uses); the loss is on the answer only unless [train].completion_only_loss is false. bf16 on a GPU,
float32 on CPU. The adapter is saved every [train].checkpoint_every steps and at the end into
--checkpoints/step-NNNNN/ (adapter_config.json + adapter_model.safetensors), each written aside and renamed, so
a checkpoint folder is complete or absent. --summary gets a JSON object of numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "eval"))

from generation import chat_messages, load_config  # noqa: E402

TARGET_PRESETS = {
    "attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mlp": ["gate_proj", "up_proj", "down_proj"],
    "attention+mlp": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


class TrainRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(gt=0)
    schedule: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_steps: int = Field(default=0, ge=0)
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    grad_accum: int = Field(default=1, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    max_length: int = Field(default=2048, ge=16)
    completion_only_loss: bool = True
    gradient_checkpointing: bool = True
    checkpoint_every: int = Field(ge=1)
    save_initial: bool = False  # also save the untrained adapter as step-00000: the base model gets evaluated


class LoraRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(ge=1, le=32)  # the challenge accepts adapters of rank <= 32
    alpha: int = Field(ge=1)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    targets: str | list[str] = "all-linear"

    def target_modules(self) -> str | list[str]:
        if isinstance(self.targets, list):
            return self.targets
        if self.targets == "all-linear":
            return "all-linear"
        if self.targets in TARGET_PRESETS:
            return TARGET_PRESETS[self.targets]
        raise ValueError(f"lora.targets = {self.targets!r}: use {[*TARGET_PRESETS, 'all-linear']} or a list")


class Recipe(BaseModel):
    model_config = ConfigDict(extra="allow")  # [data] belongs to the pipeline

    train: TrainRecipe
    lora: LoraRecipe


def load_recipe(path: Path) -> Recipe:
    try:
        recipe = Recipe.model_validate(tomllib.loads(path.read_text()))
        recipe.lora.target_modules()
        return recipe
    except tomllib.TOMLDecodeError as exc:
        sys.exit(f"train: {path}: not valid TOML: {exc}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        sys.exit(f"train: {path}: {problems}")
    except ValueError as exc:
        sys.exit(f"train: {path}: {exc}")


def save_adapter(model: Any, root: Path, step: int) -> Path:
    final = root / f"step-{step:05d}"
    if final.exists():
        return final
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    os.replace(tmp, final)
    return final


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary", type=Path)
    cli = parser.parse_args()
    recipe = load_recipe(cli.recipe)
    cfg, lora = recipe.train, recipe.lora
    config = load_config()

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    base = config.model.folder()
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=config.model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.bfloat16 if cuda else torch.float32, trust_remote_code=config.model.trust_remote_code
    )
    rows = [json.loads(line) for line in cli.data.read_text().splitlines() if line.strip()]
    dataset = Dataset.from_list(
        [
            {
                "prompt": chat_messages(row["prompt"], config.prompt),
                "completion": [{"role": "assistant", "content": row["completion"]}],
            }
            for row in rows
        ]
    )
    sft = SFTConfig(
        output_dir=str(cli.checkpoints.parent / "trainer"),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.schedule,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_length=cfg.max_length,
        completion_only_loss=cfg.completion_only_loss,
        gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        bf16=cuda,
        use_cpu=not cuda,
        save_strategy="no",  # checkpoints are the adapters saved by the callback below
        logging_steps=1,
        report_to=[],
        seed=cli.seed,
        data_seed=cli.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    peft_config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules(),
        bias="none",
        task_type="CAUSAL_LM",
    )
    saved: list[Path] = []

    class SaveAdapter(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cfg.save_initial:  # LoRA's B matrices start at zero: this adapter is the base model
                saved.append(save_adapter(kwargs["model"], cli.checkpoints, 0))
                print(f"step 0: saved {saved[-1]}", flush=True)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step = state.global_step
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                saved.append(save_adapter(kwargs["model"], cli.checkpoints, step))
                print(f"step {step}: saved {saved[-1]}", flush=True)

    trainer = SFTTrainer(
        model=model,
        args=sft,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[SaveAdapter()],
    )
    start = time.time()
    result = trainer.train()
    if not saved or saved[-1].name != f"step-{trainer.state.global_step:05d}":
        saved.append(save_adapter(trainer.model, cli.checkpoints, trainer.state.global_step))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    tail = losses[-10:] or [float(result.training_loss)]
    assert trainer.model is not None
    trainable = sum(int(p.numel()) for p in trainer.model.parameters() if p.requires_grad)
    if cli.summary:
        summary = {
            "steps": trainer.state.global_step,
            "final_loss": sum(tail) / len(tail),
            "train_loss": float(result.training_loss),
            "train_wall_s": round(time.time() - start, 2),
            "trainable_params": trainable,
            "examples_seen": trainer.state.global_step * cfg.batch_size * cfg.grad_accum,
            "checkpoints": len(saved),
            "bf16": int(cuda),
        }
        cli.summary.parent.mkdir(parents=True, exist_ok=True)
        cli.summary.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
