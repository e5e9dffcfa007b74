"""The challenge's CSV format: clear errors naming the file, the row and the column."""

from __future__ import annotations

from pathlib import Path

import pytest

from evotrain.hf_lora.csvdata import CsvDataError, Item, read_items, write_items


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.csv"
    path.write_text(text)
    return path


def test_round_trip_keeps_quotes_newlines_and_families(tmp_path: Path) -> None:
    items = [
        Item(id="a", prompt='line one\nline "two", with a comma', answer="10110", family="bit_manipulation"),
        Item(id="b", prompt="In Alice's Wonderland", answer="TEA TIME", family="cipher"),
    ]
    path = tmp_path / "out.csv"
    write_items(path, items, ["id", "prompt", "answer", "family"])
    assert read_items(path, answers=True, families=True) == items
    write_items(path, items, ["id", "prompt"])
    assert [it.answer for it in read_items(path, answers=False)] == [None, None]


def test_family_column_is_optional(tmp_path: Path) -> None:
    items = read_items(_csv(tmp_path, "id,prompt,answer\n1,p,3\n"), answers=True)
    assert items == [Item(id="1", prompt="p", answer="3")]


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("id,prompt\n1,p\n", {"answers": True}, "missing column(s) answer in the header (id,prompt)"),
        ("id,prompt,answer\n1,p,3\n", {"answers": True, "families": True}, "missing column(s) family"),
        ("id,prompt,answer\n1,p,3\n2,,4\n", {"answers": True}, "row 3, column 'prompt': empty"),
        ("id,prompt,answer\n1,p,3\n1,q,4\n", {"answers": True}, "row 3, column 'id': '1' repeats row 2"),
        ("id,prompt,answer\n1,p,3,extra\n", {"answers": True}, "row 2 has more cells than the header"),
        ("id,prompt,answer\n", {"answers": True}, "has a header but no rows"),
        ("", {"answers": True}, "the file is empty"),
    ],
)
def test_errors_name_file_row_and_column(tmp_path: Path, text: str, kwargs: dict[str, bool], expected: str) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(CsvDataError) as err:
        read_items(path, **kwargs)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file_says_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(CsvDataError, match="no such data file"):
        read_items(tmp_path / "absent.csv", answers=True)
