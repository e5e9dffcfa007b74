"""The Kaggle target: argument building, recorded CLI outputs, and a stand-in CLI process replaying them.

A live test runs only where Kaggle credentials and the `kaggle` CLI exist (read-only: it lists submissions).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from evotrain.external.command import ExternalTargetError
from evotrain.external.config import KaggleTargetConfig
from evotrain.external.kaggle import KaggleTarget, parse_submissions_csv, predictions_csv, submission_tag

from .server import write_predictions

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable `kaggle` that runs fixtures/fake_kaggle.py; its state lives in tmp_path/state."""
    state = tmp_path / "state"
    state.mkdir()
    cli = tmp_path / "kaggle"
    cli.write_text(f'#!/bin/sh\nexec {sys.executable} {FIXTURES / "fake_kaggle.py"} "$@"\n')
    cli.chmod(0o755)
    monkeypatch.setenv("FAKE_KAGGLE_DIR", str(state))
    return cli


def script(cli: Path, *outputs: str) -> None:
    (cli.parent / "state" / "script.json").write_text(json.dumps(list(outputs)))


def calls(cli: Path) -> list[list[str]]:
    return [json.loads(line) for line in (cli.parent / "state" / "calls.jsonl").read_text().splitlines()]


def kaggle(cli: Path | str = "kaggle", **options: object) -> tuple[KaggleTarget, list[float]]:
    slept: list[float] = []
    config = KaggleTargetConfig(competition="wonderland-reasoning", cli=str(cli), poll_interval_s=5, **options)  # type: ignore[arg-type]
    return KaggleTarget(config, sleep=slept.append), slept


def test_argument_building() -> None:
    target, _ = kaggle(message="evo {candidate}")
    message = "evo r1/c2 [evotrain:ab]"
    assert target.submit_args(Path("/tmp/s.csv"), message) == [
        "kaggle", "competitions", "submit", "-c", "wonderland-reasoning", "-f", "/tmp/s.csv", "-m", message,
    ]  # fmt: skip
    assert target.submissions_args() == ["kaggle", "competitions", "submissions", "-c", "wonderland-reasoning", "--csv"]
    tag = submission_tag("r0001/c02", {"a": "1"})
    assert target.message("r0001/c02", tag) == f"evo r0001/c02 {tag}"
    assert tag != submission_tag("r0001/c02", {"a": "2"}) != submission_tag("r0001/c03", {"a": "1"})


def test_predictions_become_the_competition_csv() -> None:
    text = predictions_csv({"b": 'say "1, 2"', "a": "x\ny"}, "row_id", "answer")
    assert text == 'row_id,answer\na,"x\ny"\nb,"say ""1, 2"""\n'


def test_recorded_submission_lists_are_read() -> None:
    rows = parse_submissions_csv((FIXTURES / "kaggle_submissions_pending.csv").read_text().replace("{tag}", "[t]"))
    assert [(r.status, r.public_score) for r in rows] == [("pending", None), ("complete", 0.6125)]
    legacy = parse_submissions_csv((FIXTURES / "kaggle_submissions_legacy.csv").read_text())
    assert [(r.status, r.public_score, r.private_score) for r in legacy] == [
        ("complete", 0.5, 0.48),
        ("pending", None, None),
    ]
    error = parse_submissions_csv((FIXTURES / "kaggle_submissions_error.csv").read_text())
    assert error[0].status == "error" and error[0].description.startswith("evotrain r0001/c02-lr, retry")
    assert parse_submissions_csv("No submissions found\n") == []
    with pytest.raises(ExternalTargetError, match="cannot read"):
        parse_submissions_csv("401 - Unauthorized\n")


def test_submit_polls_until_scored_then_resume_does_not_resubmit(fake_cli: Path, tmp_path: Path) -> None:
    script(
        fake_cli, "kaggle_submissions_legacy.csv", "kaggle_submissions_pending.csv", "kaggle_submissions_complete.csv"
    )
    target, slept = kaggle(fake_cli, id_column="row_id", prediction_column="answer")
    preds = write_predictions(tmp_path / "p.json", {"x-2": "\\boxed{7}", "x-1": "10110"})
    score = target.submit("r0001/c02-lr", preds)
    assert score.score == pytest.approx(0.64375)
    assert score.submission_id == submission_tag("r0001/c02-lr", {"x-2": "\\boxed{7}", "x-1": "10110"})
    made = calls(fake_cli)
    assert [c[:2] for c in made] == [["competitions", "submissions"], ["competitions", "submit"]] + [
        ["competitions", "submissions"]
    ] * 2
    submit = made[1]
    assert submit[submit.index("-c") + 1] == "wonderland-reasoning"
    assert submit[submit.index("-m") + 1] == f"evotrain r0001/c02-lr {score.submission_id}"
    assert (fake_cli.parent / "state" / "submitted.csv").read_text() == "row_id,answer\nx-1,10110\nx-2,\\boxed{7}\n"
    assert slept == [5]  # one wait: pending, then complete

    again = target.submit("r0001/c02-lr", preds)  # a resumed campaign: the tagged row is already scored
    assert again.score == score.score
    assert sum(1 for c in calls(fake_cli) if c[:2] == ["competitions", "submit"]) == 1


def test_errors_are_reported(fake_cli: Path, tmp_path: Path) -> None:
    preds = write_predictions(tmp_path / "p.json", {"a": "1"})
    script(fake_cli, "kaggle_submissions_legacy.csv", "kaggle_submissions_error.csv")
    with pytest.raises(ExternalTargetError, match="could not score"):
        kaggle(fake_cli)[0].submit("r0001/c02-lr", preds)

    (fake_cli.parent / "state" / "reject").touch()
    script(fake_cli, "kaggle_submissions_legacy.csv")
    with pytest.raises(ExternalTargetError, match="daily Submission allowance") as err:
        kaggle(fake_cli)[0].submit("r0001/c03", preds)
    assert "exited 1" in err.value.message

    (fake_cli.parent / "state" / "reject").unlink()
    script(fake_cli, "kaggle_submissions_legacy.csv", "kaggle_submissions_pending.csv")
    clock = iter(range(0, 10_000, 400))
    target = KaggleTarget(
        KaggleTargetConfig(competition="c", cli=str(fake_cli), poll_interval_s=1, poll_timeout_s=1000),
        sleep=lambda _s: None,
        clock=lambda: float(next(clock)),
    )
    with pytest.raises(ExternalTargetError, match="is still pending after 1000 s"):
        target.submit("r0001/c04", preds)

    with pytest.raises(ExternalTargetError, match="not installed"):
        kaggle(tmp_path / "no-such-kaggle")[0].submit("c", preds)


def _kaggle_credentials() -> bool:
    return bool(os.environ.get("KAGGLE_USERNAME")) or (Path.home() / ".kaggle" / "kaggle.json").exists()


@pytest.mark.skipif(
    not (_kaggle_credentials() and shutil.which("kaggle")), reason="no Kaggle credentials or no kaggle CLI here"
)
def test_live_kaggle_lists_submissions() -> None:
    competition = os.environ.get("EVOTRAIN_KAGGLE_COMPETITION", "titanic")
    target = KaggleTarget(KaggleTargetConfig(competition=competition))
    rows = target.submissions()  # read-only: spends no submission
    assert all(row.status for row in rows)
