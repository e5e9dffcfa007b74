"""The challenge's CSV format: ``id,prompt,answer`` (training, dev) or ``id,prompt`` (inputs to predict).

An optional ``family`` column names each row's domain (a puzzle family); where it is absent, the substrate's
pipeline classifies prompts by the recipe's rules. Every mistake is reported with the file, the row (as a
spreadsheet shows it: the header is row 1) and the column, never as a traceback.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from evotrain.errors import EvotrainError
from evotrain.fileio import atomic_write_text

ID, PROMPT, ANSWER, FAMILY = "id", "prompt", "answer", "family"
KNOWN_COLUMNS = (ID, PROMPT, ANSWER, FAMILY)


class CsvDataError(EvotrainError):
    """A data CSV is malformed: a missing column, an empty cell, a duplicate id."""


class Item(BaseModel):
    """One row: a prompt, its answer (absent for inputs to predict) and its family (absent when unlabelled)."""

    model_config = ConfigDict(frozen=True)

    id: str
    prompt: str
    answer: str | None = None
    family: str | None = None


def read_items(path: Path, *, answers: bool, families: bool = False) -> list[Item]:
    """Read a data CSV. ``answers``: the ``answer`` column is required; ``families``: so is ``family``."""
    if not path.is_file():
        raise CsvDataError("no such data file", path=path, fix="write the CSV there (columns id,prompt,answer)")
    required = [ID, PROMPT] + ([ANSWER] if answers else []) + ([FAMILY] if families else [])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvDataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise CsvDataError("the file is empty (no header row)", path=path, fix=f"start it with {','.join(required)}")
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise CsvDataError(
            f"missing column(s) {', '.join(missing)} in the header ({','.join(header)})",
            path=path,
            fix=f"the header must hold {','.join(required)}" + ("" if families else " (family is optional)"),
        )
    items: list[Item] = []
    seen: dict[str, int] = {}
    try:
        for row_no, row in enumerate(reader, start=2):
            if None in row:  # more cells than header fields
                raise CsvDataError(f"row {row_no} has more cells than the header", path=path, fix="quote the cell")
            for column in required:
                if row.get(column) is None or not row[column].strip():
                    raise CsvDataError(f"row {row_no}, column {column!r}: empty", path=path)
            item_id = row[ID].strip()
            if item_id in seen:
                raise CsvDataError(
                    f"row {row_no}, column 'id': {item_id!r} repeats row {seen[item_id]}",
                    path=path,
                    fix="ids must be unique",
                )
            seen[item_id] = row_no
            family = (row.get(FAMILY) or "").strip() or None
            answer = row[ANSWER].strip() if answers else None
            items.append(Item(id=item_id, prompt=row[PROMPT], answer=answer, family=family))
    except csv.Error as exc:
        raise CsvDataError(f"row {reader.line_num}: {exc}", path=path, fix="check the quoting") from None
    if not items:
        raise CsvDataError("the file has a header but no rows", path=path)
    return items


def to_csv(items: Iterable[Item], columns: Sequence[str]) -> str:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for item in items:
        row = item.model_dump()
        writer.writerow({c: row[c] if row[c] is not None else "" for c in columns})
    return out.getvalue()


def write_items(path: Path, items: Iterable[Item], columns: Sequence[str]) -> None:
    """Write a data CSV atomically with the given columns (a subset of id, prompt, answer, family)."""
    unknown = [c for c in columns if c not in KNOWN_COLUMNS]
    if unknown:
        raise ValueError(f"unknown column(s) {unknown}")
    atomic_write_text(path, to_csv(items, columns))
