"""Reading a manifest for the evidence: its selected checkpoint, per-domain scores and counts, its status, its
evaluation reports, and the per-file sections of its recipe diff."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError

from evotrain.records.evaluation import EvalReport, read_eval_report
from evotrain.records.manifest import CheckpointEval, Manifest

# Failures that say something about the recipe (as opposed to the worker, or the cluster).
RECIPE_FAILURES = frozenset(
    {"step_failed", "timeout", "killed", "oom", "missing_output", "bad_output", "no_checkpoints"}
)
INFRA_FAILURES = frozenset({"preempted", "node_failure", "cancelled"})
FAR_ABOVE = 2.0  # "far above noise": a dev gain at least this many promotion thresholds high


# ---- evaluation reports --------------------------------------------------------------------------------------
def load_eval_report(campaign_root: Path, relpath: str) -> tuple[EvalReport | None, str | None]:
    """The report, or None and the reason it could not be read (the collector falls back to unpaired stats)."""
    path = campaign_root / relpath
    try:
        return read_eval_report(path), None
    except FileNotFoundError:
        return None, f"evaluation report {relpath} is missing"
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"evaluation report {relpath} is not a valid report ({type(exc).__name__})"


def selected_eval(m: Manifest) -> CheckpointEval | None:
    if m.selected is None:
        return None
    for ckpt in m.checkpoints:
        if ckpt.checkpoint == m.selected.checkpoint:
            return ckpt
    return None


def domain_scores(m: Manifest) -> dict[str, float]:
    ckpt = selected_eval(m)
    return {d: s.score for d, s in ckpt.domains.items()} if ckpt else {}


def domain_counts(m: Manifest) -> dict[str, tuple[float, int]]:
    ckpt = selected_eval(m)
    return {d: (s.score, s.n) for d, s in ckpt.domains.items()} if ckpt else {}


def candidate_status(m: Manifest) -> str:
    if m.failure is not None:
        return m.failure.failure_class
    return "ok" if m.selected is not None else "no_selection"


# ---- diffs (for the rationale audit) ------------------------------------------------------------------------
_DIFF_HEADER = re.compile(r"^diff --git a/(.+?) b/", re.MULTILINE)


def split_diff(diff: str) -> dict[str, str]:
    """A recipe diff split per file (relpath -> that file's section)."""
    starts = [(m.start(), m.group(1)) for m in _DIFF_HEADER.finditer(diff)]
    out = {}
    for i, (start, relpath) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(diff)
        out[relpath] = diff[start:end]
    return out


def added_lines(section: str) -> list[str]:
    return [line[1:].strip() for line in section.splitlines() if line.startswith("+") and not line.startswith("+++")]
