"""Seal a substrate: copy every evotrain module its Python files import into the substrate itself.

A reference substrate's commands (the frozen evaluation, the editable training script) use a few evotrain modules
(the challenge scorer, the puzzles' model code, file helpers). Imported from the installed package, they would
sit outside the snapshot: upgrading or editing evotrain would silently change the "frozen" evaluation of every
existing campaign. So the builder copies them, with everything they import from evotrain in turn, to
``vendor/evotrain/...`` inside the substrate (a frozen folder, so the snapshot hashes them and `run` and `audit`
refuse a changed one by name), and each script puts ``vendor/`` first on ``sys.path``: ``import evotrain`` in a
substrate's step is the sealed copy, and an evotrain module that was not sealed does not import at all.

The imports are found statically (the ``ast`` of every ``.py`` file, function-level imports included), so the
copy holds exactly the modules the code can reach.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from evotrain.errors import ConfigError
from evotrain.fileio import IGNORED_DIR_NAMES

PACKAGE = "evotrain"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the installed evotrain package this module belongs to
VENDOR = "vendor"  # the substrate folder that holds the sealed copy


def module_file(name: str) -> Path | None:
    """The source file of the evotrain module or package ``name``, None when there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    path = PACKAGE_DIR.joinpath(*parts[1:])
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _module_name(path: Path) -> str | None:
    """The dotted name of an evotrain source file; None for a file outside the package."""
    if not path.is_relative_to(PACKAGE_DIR):
        return None
    parts = [PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def evotrain_imports(path: Path) -> set[str]:
    """The evotrain modules ``path`` imports, anywhere in the file, with the packages above them."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise ConfigError(f"cannot read the imports of {path.name}: {exc}", path=path) from None
    own = _module_name(path)
    package = own if own and path.name == "__init__.py" else (own.rpartition(".")[0] if own else None)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:  # a relative import inside evotrain
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")}
    found = {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}
    for name in list(found):
        if module_file(name) is None:
            raise ConfigError(f"{path.name} imports {name}, which is not a module of the installed evotrain", path=path)
        parts = name.split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts))}
    return found


def import_closure(files: list[Path]) -> dict[str, Path]:
    """{module name: source file} of every evotrain module ``files`` import, directly or through each other."""
    pending = set().union(*(evotrain_imports(f) for f in files)) if files else set()
    closure: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        source = module_file(name)
        assert source is not None  # evotrain_imports refused names without a file
        closure[name] = source
        pending |= evotrain_imports(source) - closure.keys()
    return dict(sorted(closure.items()))


def substrate_python_files(root: Path) -> list[Path]:
    """The substrate's own Python files (not the sealed copy, not caches)."""
    parts = {p: p.relative_to(root).parts for p in root.rglob("*.py")}
    return sorted(p for p, rel in parts.items() if rel[0] != VENDOR and not set(rel) & IGNORED_DIR_NAMES)


def seal_substrate(root: Path) -> list[str]:
    """Copy the evotrain modules the substrate at ``root`` imports into ``root/vendor``; returns their names."""
    closure = import_closure(substrate_python_files(root))
    for source in closure.values():
        target = root / VENDOR / source.relative_to(PACKAGE_DIR.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return list(closure)
