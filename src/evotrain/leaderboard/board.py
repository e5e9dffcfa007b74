"""The board: the hidden items a leaderboard scores, read from an answers JSONL file.

One JSON object a line. The generic format::

    {"id": "q-001", "answer": "42", "domain": "algebra", "part": "public"}

`domain` (optional) groups items for per-domain scores; `part` (optional, "public" | "private") puts an item in
the public part (scored back to the submitter) or the private part (hidden until the operator finalizes). An item
without a `part` is assigned by hashing its id, so the same file always splits the same way.

The puzzles substrate's `AnswerRecord` lines (`{"id", "split", "family", "answer"}`) are read as they are: the
`family` is the domain, and only lines whose `split` equals the server's `--split` (default "external") are on the
board; lines without a `split` always are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evotrain.errors import ConfigError

Part = Literal["public", "private"]
ALL_SPLITS = "all"
MAX_ID_LENGTH = 256
# A fixed salt keeps the hash split independent of any other use of sha256(id) (e.g. a shuffle keyed on ids).
_PART_SALT = "evotrain-leaderboard-part"


class AnswerLine(BaseModel):
    """One line of an answers file, in the generic format or as a puzzles `AnswerRecord`."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
    answer: str
    domain: str | None = None
    family: str | None = None  # the puzzles substrate's name for the domain
    split: str | None = None  # the puzzles substrate's external | control
    part: Part | None = None


class BoardItem(BaseModel):
    id: str
    answer: str
    domain: str
    part: Part


class Board(BaseModel):
    name: str
    source: str
    split: str
    items: dict[str, BoardItem]

    def part(self, part: Part) -> dict[str, BoardItem]:
        return {i: item for i, item in self.items.items() if item.part == part}

    def digest(self) -> str:
        """sha256 over the items (ids, answers, domains, parts): a restart on a changed board is refused."""
        canonical = [item.model_dump() for _, item in sorted(self.items.items())]
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def hashed_part(item_id: str, public_fraction: float) -> Part:
    value = int.from_bytes(hashlib.sha256(f"{_PART_SALT}:{item_id}".encode()).digest()[:8], "big")
    return "public" if value / 2**64 < public_fraction else "private"


def load_board(path: Path, *, split: str = "external", public_fraction: float = 0.5, name: str | None = None) -> Board:
    """Read an answers file; ConfigError names the file, the line and the fix."""
    if not 0.0 < public_fraction <= 1.0:
        raise ConfigError(
            f"public fraction {public_fraction} is outside (0, 1]", fix="pass --public-fraction between 0 and 1"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("answers file not found", path=path, fix="pass the answers JSONL with --answers") from None
    items: dict[str, BoardItem] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        line = _parse_line(path, number, raw)
        if line.split is not None and split != ALL_SPLITS and line.split != split:
            continue
        if line.id in items:
            raise ConfigError(f"line {number}: id {line.id!r} appears twice", path=path, fix="make every id unique")
        items[line.id] = BoardItem(
            id=line.id,
            answer=line.answer,
            domain=line.domain or line.family or "all",
            part=line.part or hashed_part(line.id, public_fraction),
        )
    if not items:
        raise ConfigError(
            f"no items on the board (split {split!r})",
            path=path,
            fix="check --split (external, control or all) and that the file has answer lines",
        )
    board = Board(name=name or path.stem, source=str(path.resolve()), split=split, items=items)
    if not board.part("public"):
        raise ConfigError(
            "no item fell in the public part", path=path, fix="raise --public-fraction, or set `part` on some lines"
        )
    return board


def _parse_line(path: Path, number: int, raw: str) -> AnswerLine:
    try:
        return AnswerLine.model_validate_json(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"field `{'.'.join(str(p) for p in e['loc']) or '(line)'}`: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(
            f"line {number}: {problems}",
            path=path,
            fix='one JSON object a line: {"id", "answer", "domain"?, "part"?} (see docs/leaderboard.md)',
        ) from None
