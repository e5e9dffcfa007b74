"""Fixtures: a puzzles answers file (external + control, as the substrate builder writes it) and a server on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evotrain.puzzles.build import AnswerRecord
from evotrain.puzzles.splits import make_split

from .server import LeaderboardProcess


def puzzle_answers(path: Path, per_family: int = 8) -> Path:
    lines = []
    for split in ("external", "control"):
        for p in make_split(split, per_family, seed=3):
            lines.append(AnswerRecord(id=p.id, split=split, family=p.family, answer=p.answer))
    path.write_text("".join(r.model_dump_json() + "\n" for r in lines))
    return path


@pytest.fixture(scope="module")
def puzzles_board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeaderboardProcess]:
    """A server on the puzzles answers, per-domain scores on; one per test module."""
    root = tmp_path_factory.mktemp("board")
    server = LeaderboardProcess(puzzle_answers(root / "answers.jsonl"), root / "board.sqlite", "--per-domain")
    server.start()
    yield server
    server.stop()
