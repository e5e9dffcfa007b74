"""The recipe diff: what a sandbox's editable files say that the substrate snapshot does not.

It is recorded in every manifest (a unified diff with git's `a/` `b/` prefixes, readable by people and agents)
and, for a promoted winner, turned into the standing recipe every later fork inherits.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from evotrain.errors import EvotrainError
from evotrain.fileio import iter_tree
from evotrain.substrate.spec import SubstrateSpec

DEV_NULL = "/dev/null"


class UnrepresentableRecipe(EvotrainError):
    """A sandbox's edits cannot be carried as a standing recipe (it deleted an editable file)."""


@dataclass
class EditableChanges:
    changed: dict[str, bytes] = field(default_factory=dict)  # relpath -> new content (edited or added)
    deleted: list[str] = field(default_factory=list)


def _editable_files(root: Path, spec: SubstrateSpec) -> dict[str, Path]:
    return {relpath: path for relpath, path in iter_tree(root) if spec.is_editable(relpath)}


def _same_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return a.read_bytes() == b.read_bytes()


def editable_changes(snapshot: Path, sandbox: Path, spec: SubstrateSpec) -> EditableChanges:
    """Every editable file the sandbox edited, added or deleted relative to the snapshot."""
    before = _editable_files(snapshot, spec)
    after = _editable_files(sandbox, spec)
    out = EditableChanges()
    for relpath in sorted(set(before) | set(after)):
        if relpath not in after:
            out.deleted.append(relpath)
        elif relpath not in before or not _same_content(before[relpath], after[relpath]):
            out.changed[relpath] = after[relpath].read_bytes()
    return out


def _lines(data: bytes) -> list[str] | None:
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def _file_diff(relpath: str, old: bytes | None, new: bytes | None) -> str:
    old_name = f"a/{relpath}" if old is not None else DEV_NULL
    new_name = f"b/{relpath}" if new is not None else DEV_NULL
    header = f"diff --git a/{relpath} b/{relpath}\n"
    old_lines = _lines(old) if old is not None else []
    new_lines = _lines(new) if new is not None else []
    if old_lines is None or new_lines is None:
        return header + f"Binary files {old_name} and {new_name} differ\n"
    body = []
    for line in difflib.unified_diff(old_lines, new_lines, fromfile=old_name, tofile=new_name):
        body.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return header + "".join(body)


def recipe_diff(snapshot: Path, sandbox: Path, spec: SubstrateSpec) -> tuple[str, list[str]]:
    """A unified diff of every editable file that changed, was added or was deleted, and their relpaths."""
    changes = editable_changes(snapshot, sandbox, spec)
    parts: list[str] = []
    edited = sorted([*changes.changed, *changes.deleted])
    for relpath in edited:
        old_path = snapshot / relpath
        old = old_path.read_bytes() if old_path.is_file() else None
        new = changes.changed.get(relpath)
        parts.append(_file_diff(relpath, old, new))
    return "".join(parts), edited


def editable_files_changed(snapshot: Path, sandbox: Path, spec: SubstrateSpec) -> dict[str, str]:
    """The sandbox's edited and added editable files (relpath -> full text): the content of a standing recipe.

    A standing recipe holds files to write over a fork, so it cannot say "delete this file": a sandbox that
    deleted an editable file raises UnrepresentableRecipe naming it (the caller should not promote it), and so
    does a binary edited file, since recipe files are stored as text.
    """
    changes = editable_changes(snapshot, sandbox, spec)
    if changes.deleted:
        raise UnrepresentableRecipe(
            f"the sandbox deleted editable file(s) {', '.join(changes.deleted)}; a standing recipe cannot delete",
            path=sandbox / changes.deleted[0],
            fix="do not promote this candidate; ask workers to empty a file rather than delete it",
        )
    out: dict[str, str] = {}
    for relpath, data in changes.changed.items():
        try:
            out[relpath] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnrepresentableRecipe(
                f"edited file {relpath!r} is not UTF-8 text; a standing recipe stores text files",
                path=sandbox / relpath,
                fix="do not promote this candidate, or keep binary files out of the editable globs",
            ) from None
    return out


def recipe_files_or_problem(
    snapshot: Path, sandbox: Path, spec: SubstrateSpec
) -> tuple[dict[str, str] | None, str | None]:
    """`editable_files_changed`, or None and why the sandbox's edits cannot be carried as a standing recipe: what a
    manifest records as its `recipe_files` and `recipe_files_problem`."""
    try:
        return editable_files_changed(snapshot, sandbox, spec), None
    except EvotrainError as exc:
        return None, exc.message
