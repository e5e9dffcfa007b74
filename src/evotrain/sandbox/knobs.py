"""Read and write one declared recipe knob: a dotted key inside an editable TOML file of a sandbox.

tomlkit keeps the file's comments, order and formatting, so a knob change is a one-line recipe diff.
Keys are split on `.`; a key segment that itself contains a dot is not supported.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.toml_document import TOMLDocument

from evotrain.errors import ConfigError
from evotrain.fileio import atomic_write_text
from evotrain.records.manifest import KnobChange
from evotrain.substrate.spec import Knob, SubstrateSpec

_FIX = "make the key exist in the substrate's file with the type declared in evotrain.toml [search.axes]"


def _load(path: Path) -> TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("knob file not found in the sandbox", path=path, fix="restore the file") from None
    except TOMLKitError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path, fix="correct the TOML syntax") from None


def _parent_and_leaf(doc: TOMLDocument, knob: Knob, path: Path) -> tuple[Any, str]:
    """The table holding the knob's last key segment, and that segment."""
    *parents, leaf = knob.key.split(".")
    table: Any = doc
    for depth, part in enumerate(parents):
        if not isinstance(table, dict) or part not in table:
            missing = ".".join(parents[: depth + 1])
            raise ConfigError(f"key `{knob.key}`: table `{missing}` is missing", path=path, fix=_FIX)
        table = table[part]
    if not isinstance(table, dict) or leaf not in table:
        raise ConfigError(f"key `{knob.key}` is missing", path=path, fix=_FIX)
    return table, leaf


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_value(knob: Knob, value: Any) -> str | None:
    """Why `value` does not fit the knob's declared type, or None when it fits (range not checked)."""
    if knob.type == "float" and not (_is_number(value) and math.isfinite(value)):
        return f"expected a number for a float knob, found {value!r}"
    if knob.type == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        return f"expected an integer, found {value!r}"
    if knob.type == "bool" and not isinstance(value, bool):
        return f"expected true or false, found {value!r}"
    if knob.type == "choice" and not isinstance(value, str | int | float):
        return f"expected one of {knob.choices}, found {value!r}"
    if knob.type == "weights":
        if not isinstance(value, dict) or not value:
            return f"expected a non-empty table {{domain = weight}}, found {value!r}"
        bad = [k for k, v in value.items() if not (_is_number(v) and math.isfinite(v))]
        if bad:
            return f"weight(s) {', '.join(bad)} are not numbers"
    return None


def _out_of_range(knob: Knob, value: Any) -> str | None:
    if knob.type in ("float", "int") and knob.low is not None and knob.high is not None:
        if not knob.low <= value <= knob.high:
            return f"{value!r} is outside the declared range [{knob.low}, {knob.high}]"
    if knob.type == "weights" and knob.low is not None and knob.high is not None:
        outside = [k for k, v in value.items() if not knob.low <= v <= knob.high]
        if outside:
            return f"weight(s) {', '.join(outside)} are outside the declared range [{knob.low}, {knob.high}]"
    if knob.type == "choice" and knob.choices is not None and value not in knob.choices:
        return f"{value!r} is not one of the declared choices {knob.choices}"
    return None


def read_knob(sandbox: Path, knob: Knob) -> Any:
    """The knob's current value as plain Python (a float knob written `1` reads as 1.0; weights as a dict)."""
    path = sandbox / knob.file
    table, leaf = _parent_and_leaf(_load(path), knob, path)
    item = table[leaf]
    value = item.unwrap() if hasattr(item, "unwrap") else item
    problem = check_value(knob, value)
    if problem:
        raise ConfigError(f"key `{knob.key}` ({knob.type} knob): {problem}", path=path, fix=_FIX)
    if knob.type == "float":
        return float(value)
    if knob.type == "weights":
        return {str(k): float(v) for k, v in value.items()}
    return value


def check_knobs(substrate: Path, spec: SubstrateSpec) -> None:
    """Every declared knob reads from the substrate's own files (its key exists, its value fits its type), so no
    axis is declared whose every trial would fail; ConfigError names the file, the key and the knob."""
    for axis_name, axis in spec.search.axes.items():
        for knob_name, knob in axis.knobs.items():
            try:
                read_knob(substrate, knob)
            except ConfigError as exc:
                raise ConfigError(
                    f"{exc.message} (knob search.axes.{axis_name}.knobs.{knob_name} of evotrain.toml)",
                    path=exc.path,
                    fix="add the key to the file, or correct the knob's `file`, `key` or `type` in evotrain.toml",
                ) from None


def write_knob(sandbox: Path, knob: Knob, value: Any) -> None:
    """Set the knob to `value` (type- and range-checked), keeping the rest of the file byte for byte."""
    path = sandbox / knob.file
    problem = check_value(knob, value) or _out_of_range(knob, value)
    if problem:
        raise ConfigError(f"cannot set `{knob.key}` ({knob.type} knob): {problem}", path=path, fix=_FIX)
    doc = _load(path)
    table, leaf = _parent_and_leaf(doc, knob, path)
    if knob.type == "weights":
        weights = table[leaf]
        if not isinstance(weights, dict):
            raise ConfigError(f"key `{knob.key}` is not a table {{domain = weight}}", path=path, fix=_FIX)
        for domain in [d for d in weights if d not in value]:
            del weights[domain]
        for domain, weight in value.items():
            if domain not in weights or weights[domain] != weight:  # untouched weights keep their spelling
                weights[domain] = float(weight)
    elif knob.type == "float":
        table[leaf] = float(value)
    else:
        table[leaf] = value
    atomic_write_text(path, tomlkit.dumps(doc), mode=path.stat().st_mode & 0o777)


def knob_values(sandbox: Path, spec: SubstrateSpec) -> dict[tuple[str, str], Any]:
    """(axis, knob) → its current value in the sandbox, for every declared knob that can be read."""
    values: dict[tuple[str, str], Any] = {}
    for axis_name, axis in spec.search.axes.items():
        for knob_name, knob in axis.knobs.items():
            try:
                values[(axis_name, knob_name)] = read_knob(sandbox, knob)
            except Exception:  # an agent may leave a recipe file unparsable: that knob is simply not reported
                continue
    return values


def knob_changes(before: dict[tuple[str, str], Any], sandbox: Path, spec: SubstrateSpec) -> list[KnobChange]:
    """The declared knobs an agent's free-form edits moved, as machine-readable changes (for dead ends)."""
    after = knob_values(sandbox, spec)
    out = []
    for (axis_name, knob_name), old in before.items():
        new = after.get((axis_name, knob_name), old)
        if new == old:
            continue
        knob = spec.search.axes[axis_name].knobs[knob_name]
        if knob.type == "weights" and isinstance(old, dict) and isinstance(new, dict):
            for domain in sorted(set(old) | set(new)):
                a, b = old.get(domain), new.get(domain)
                if a != b:
                    out.append(_change(axis_name, knob_name, knob.file, f"{knob.key}.{domain}", a, b))
        else:
            out.append(_change(axis_name, knob_name, knob.file, knob.key, old, new))
    return out


def _change(axis: str, knob: str, file: str, key: str, old: Any, new: Any) -> KnobChange:
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (old, new))
    direction = ("increase" if new > old else "decrease") if numeric else "set"
    return KnobChange(axis=axis, knob=knob, file=file, key=key, old=old, new=new, direction=direction)


def knob_settings(sandbox: Path, spec: SubstrateSpec) -> dict[str, Any]:
    """`<axis>.<knob>` → its value in the sandbox, for every readable declared knob: a trial's configuration."""
    return {f"{axis}.{knob}": value for (axis, knob), value in knob_values(sandbox, spec).items()}
