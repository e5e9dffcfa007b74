"""An external target that is a user command, run by the orchestrator outside every sandbox.

The command gets the predictions file and prints a score: its last non-empty stdout line is either a number or a
JSON object {"score": float, "domains": {...}?, "n": int?, "submission_id": str?}.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
from pathlib import Path

from pydantic import ValidationError

from evotrain.errors import EvotrainError
from evotrain.external.config import CommandTargetConfig
from evotrain.external.protocol import ExternalScore


class ExternalTargetError(EvotrainError):
    """The external target could not score a submission."""


class CommandTarget:
    def __init__(self, config: CommandTargetConfig) -> None:
        self.config = config
        self.name = config.name

    def submit(self, candidate_id: str, predictions: Path) -> ExternalScore:
        command = self.config.command.replace("{predictions}", shlex.quote(str(predictions))).replace(
            "{candidate}", shlex.quote(candidate_id)
        )
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=self.config.cwd,
                capture_output=True,
                text=True,
                timeout=self.config.timeout_s,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            raise ExternalTargetError(
                f"external command timed out after {self.config.timeout_s:.0f} s: {command}",
                fix="raise `timeout_s` in the external-target spec or make the scorer faster",
            ) from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise ExternalTargetError(f"external command exited {done.returncode}: {command}\n{tail}")
        return parse_score_output(done.stdout, command)


def parse_score_output(stdout: str, command: str) -> ExternalScore:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ExternalTargetError(f"external command printed nothing: {command}", fix="print the score last")
    last = lines[-1]
    try:
        number = float(last)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise ExternalTargetError(
                f"external command printed a score that is not a finite number ({last[:40]!r}): {command}",
                fix="make the scorer print a finite number (a failed scoring should exit non-zero)",
            )
        return ExternalScore(score=number)
    try:
        return ExternalScore.model_validate(json.loads(last))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ExternalTargetError(
            f"could not read a score from the external command's last line {last[:200]!r}: {exc}",
            fix='print a number or a JSON object {"score": ...} as the last line',
        ) from None
