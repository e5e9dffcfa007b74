"""The `kaggle` external target: submit through the official Kaggle CLI and read the score back.

    kaggle competitions submit -c COMP -f FILE -m MESSAGE
    kaggle competitions submissions -c COMP --csv

The predictions file ({"predictions": {id: answer}}) becomes the CSV the competition wants (two columns, names
configurable). Each submission's message carries a tag derived from the candidate and its predictions; the
submissions list is polled until the tagged row is scored. A tagged row already on the list (a campaign resumed after
a crash) is read back instead of submitted again, so Kaggle's daily limit is not spent twice.
"""

from __future__ import annotations

import csv
import io
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from evotrain.external.command import ExternalTargetError
from evotrain.external.config import KaggleTargetConfig
from evotrain.external.leaderboard import idempotency_key, read_predictions
from evotrain.external.protocol import ExternalScore
from evotrain.fileio import atomic_write_text


class KaggleSubmission(BaseModel):
    """One row of `kaggle competitions submissions --csv`."""

    file_name: str
    date: str
    description: str
    status: str  # pending | complete | error (the CLI may print SubmissionStatus.COMPLETE: normalized)
    public_score: float | None
    private_score: float | None


def submission_tag(candidate_id: str, predictions: dict[str, str]) -> str:
    return f"[evotrain:{idempotency_key(candidate_id, predictions)[-12:]}]"


def predictions_csv(predictions: dict[str, str], id_column: str, prediction_column: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([id_column, prediction_column])
    for item_id in sorted(predictions):
        writer.writerow([item_id, predictions[item_id]])
    return out.getvalue()


def _normalize_status(raw: str) -> str:
    return raw.strip().rsplit(".", 1)[-1].lower()


def _score(raw: str | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "", "None") else None
    except ValueError:
        return None


def parse_submissions_csv(text: str) -> list[KaggleSubmission]:
    """Rows of the CLI's CSV; lines before the header (warnings the CLI prints) are skipped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "publicScore" in line and "description" in line), None)
    if start is None:
        if "No submissions found" in text or not text.strip():
            return []
        raise ExternalTargetError(f"cannot read the Kaggle submissions list: {text.strip()[:400]}")
    rows = []
    for row in csv.DictReader(lines[start:]):
        rows.append(
            KaggleSubmission(
                file_name=row.get("fileName") or "",
                date=row.get("date") or "",
                description=row.get("description") or "",
                status=_normalize_status(row.get("status") or ""),
                public_score=_score(row.get("publicScore")),
                private_score=_score(row.get("privateScore")),
            )
        )
    return rows


class KaggleTarget:
    def __init__(
        self,
        config: KaggleTargetConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.name = config.name
        self._sleep = sleep
        self._clock = clock

    # ---- argument building ------------------------------------------------------------------------------------
    def submit_args(self, csv_path: Path, message: str) -> list[str]:
        c = self.config
        return [c.cli, "competitions", "submit", "-c", c.competition, "-f", str(csv_path), "-m", message]

    def submissions_args(self) -> list[str]:
        return [self.config.cli, "competitions", "submissions", "-c", self.config.competition, "--csv"]

    def message(self, candidate_id: str, tag: str) -> str:
        return f"{self.config.message.replace('{candidate}', candidate_id)} {tag}"

    # ---- the protocol -----------------------------------------------------------------------------------------
    def submit(self, candidate_id: str, predictions: Path) -> ExternalScore:
        preds = read_predictions(predictions)
        tag = submission_tag(candidate_id, preds)
        if self._find(tag) is None:
            with tempfile.TemporaryDirectory(prefix="evotrain-kaggle-") as tmp:
                csv_path = Path(tmp) / "submission.csv"
                text = predictions_csv(preds, self.config.id_column, self.config.prediction_column)
                atomic_write_text(csv_path, text)
                self._run(self.submit_args(csv_path, self.message(candidate_id, tag)))
        row = self._wait_scored(tag)
        assert row.public_score is not None
        return ExternalScore(score=row.public_score, submission_id=tag)

    def submissions(self) -> list[KaggleSubmission]:
        return parse_submissions_csv(self._run(self.submissions_args()))

    def _find(self, tag: str) -> KaggleSubmission | None:
        return next((row for row in self.submissions() if tag in row.description), None)

    def _wait_scored(self, tag: str) -> KaggleSubmission:
        deadline = self._clock() + self.config.poll_timeout_s
        while True:
            row = self._find(tag)
            if row is not None and row.status == "error":
                raise ExternalTargetError(
                    f"Kaggle could not score the submission {tag} for {self.config.competition}",
                    fix="check the CSV columns (`id_column`, `prediction_column`) against the competition's format",
                )
            if row is not None and row.status == "complete" and row.public_score is not None:
                return row
            if self._clock() >= deadline:
                state = "is not on the submissions list" if row is None else f"is still {row.status}"
                raise ExternalTargetError(
                    f"the Kaggle submission {tag} {state} after {self.config.poll_timeout_s:.0f} s",
                    fix="raise `poll_timeout_s`; the next run reads the score instead of submitting again",
                )
            self._sleep(self.config.poll_interval_s)

    def _run(self, args: list[str]) -> str:
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=self.config.timeout_s, check=False)
        except FileNotFoundError:
            raise ExternalTargetError(
                f"the Kaggle CLI {self.config.cli!r} is not installed",
                fix="pip install kaggle, put your API token in ~/.kaggle/kaggle.json, or set `cli`",
            ) from None
        except subprocess.TimeoutExpired:
            raise ExternalTargetError(
                f"`{' '.join(args[:3])}` timed out after {self.config.timeout_s:.0f} s", fix="raise `timeout_s`"
            ) from None
        if done.returncode != 0:
            tail = (done.stderr.strip() or done.stdout.strip())[-600:]
            raise ExternalTargetError(
                f"`{' '.join(args[:3])} -c {self.config.competition}` exited {done.returncode}: {tail}",
                fix="check the Kaggle credentials, the competition name and that you accepted its rules",
            )
        return done.stdout
