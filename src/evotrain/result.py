"""The campaign's deliverable: `evotrain result RUN --export DIR` writes what a user hands on.

    DIR/
      README.md               the verdict, what each file is, the promoted changes with their gains and intervals
      recipe/<path>           the final standing recipe's edited files (absent when nothing was promoted)
      recipe.diff             the standing recipe as a unified diff against the substrate (empty: the substrate's)
      checkpoint/<name>/      the final pick's selected checkpoint (the one its external score was made from)
      checkpoint.recipe.diff  the recipe that trained that checkpoint, when it is not the standing recipe
      adapter.zip             that checkpoint packaged for submission, when it is a LoRA adapter (hf-lora)

The folder is built beside DIR and renamed into place, so an interrupted export leaves no half of it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from evotrain.campaign.verdict import Verdict, promotion_line, verdict_line
from evotrain.errors import EvotrainError
from evotrain.fileio import copy_file_fast, staged_dir
from evotrain.hf_lora.package import ADAPTER_CONFIG, package_adapter


@dataclass(frozen=True)
class Exported:
    root: Path
    files: list[str]  # DIR-relative paths written, sorted
    notes: list[str]  # what could not be exported, and why


def export_result(verdict: Verdict, dest: Path, *, title: str) -> Exported:
    """Write the deliverable folder `dest` (absent or empty); EvotrainError if it holds anything."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise EvotrainError(
            "the export folder already exists and is not empty", path=dest, fix="pass a new or empty --export folder"
        )
    if verdict.rounds == 0:
        raise EvotrainError(
            "no round of this campaign has closed: there is nothing to export yet",
            path=verdict.root,
            fix="run the campaign (`evotrain run RUN`) until a round closes",
        )
    notes: list[str] = []
    with staged_dir(dest) as out:
        standing = verdict.standing
        for relpath, text in sorted(standing.files.items()):
            target = out / "recipe" / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        (out / "recipe.diff").write_text(standing.diff)
        checkpoint = verdict.best_checkpoint
        pick = verdict.pick_manifest
        if checkpoint is None or pick is None:
            notes.append("no candidate was scored externally: there is no best checkpoint to copy")
        elif not checkpoint.is_dir():
            notes.append(f"the best checkpoint folder {checkpoint} is gone (removed after the run?): not copied")
        else:
            copy = lambda src, dst: copy_file_fast(Path(src), Path(dst))  # noqa: E731
            shutil.copytree(checkpoint, out / "checkpoint" / checkpoint.name, copy_function=copy)
            if not verdict.pick_is_standing:
                (out / "checkpoint.recipe.diff").write_text(pick.recipe_diff)
            if (checkpoint / ADAPTER_CONFIG).is_file():
                package_adapter(checkpoint, out / "adapter.zip")
        (out / "README.md").write_text(_readme(verdict, title, out, notes))
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return Exported(root=dest, files=files, notes=notes)


def _readme(verdict: Verdict, title: str, out: Path, notes: list[str]) -> str:
    pick = verdict.pick_manifest
    lines = [f"# Result: {title}", "", verdict_line(verdict), "", "## What is here", ""]
    if verdict.standing.files:
        lines.append(
            f"- `recipe/`: the final standing recipe's edited files (promoted from {verdict.standing_source}), at "
            "their paths in the substrate: copy them over the substrate to train it."
        )
    else:
        lines.append("- no `recipe/`: nothing was promoted, so the final standing recipe is the substrate's own.")
    lines.append("- `recipe.diff`: the final standing recipe as a unified diff against the substrate.")
    if pick is not None and pick.external is not None and (out / "checkpoint").is_dir():
        lines.append(
            f"- `checkpoint/{pick.external.checkpoint}/`: the best checkpoint, the final pick's selected one "
            f"({pick.candidate_id}, external {pick.external.score:.4f}), copied from `{verdict.best_checkpoint}`."
        )
        if (out / "checkpoint.recipe.diff").exists():
            lines.append(
                "- `checkpoint.recipe.diff`: the recipe that trained that checkpoint. It is **not** the standing "
                "recipe: the best external score came from a candidate the loop did not promote (its dev gain did "
                "not clear the noise threshold, or the external target did not confirm it)."
            )
        if (out / "adapter.zip").exists():
            lines.append("- `adapter.zip`: that checkpoint's LoRA adapter, packaged for submission.")
    lines += [f"- not exported: {note}" for note in notes]
    lines += ["", "## Promoted changes", ""]
    lines += [f"- {promotion_line(p)}" for p in verdict.promotions] or ["- none"]
    return "\n".join(lines) + "\n"
