"""The frozen constitution's file format: human-readable Markdown with a fenced TOML block of machine-checkable
parameters, one per rule (the checks every policy update must pass are in `constitution_checks`)."""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evotrain.errors import ConfigError

DEFAULT_CONSTITUTION_PATH = Path(str(importlib.resources.files("evotrain").joinpath("assets/constitution.md")))
_TOML_BLOCK = re.compile(r"^```toml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

RULES = (
    "external_authoritative",
    "gap_calibration",
    "axis_rotation",
    "dead_ends_append_only",
    "substrate_frozen",
    "promotion_threshold",
    "policy_chain",
)


class Constitution(BaseModel):
    """The machine-checkable parameters of the constitution (the Markdown around them is for people and agents)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    external_authoritative: bool
    decoupled_domains_must_be_untrusted: bool
    rotate_after_rounds_without_external_gain: Annotated[int, Field(ge=1)]
    dead_ends_append_only: bool
    standing_recipe_editable_only: bool
    promotion_requires_gain_above_threshold: bool
    min_k: Annotated[float, Field(ge=0)]
    text: Annotated[str, Field(exclude=True, repr=False)] = ""  # the whole Markdown, as the meta agent reads it

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


class RuleBreach(BaseModel):
    rule: str  # one of RULES
    reason: str

    def render(self) -> str:
        return f"[{self.rule}] {self.reason}"


def load_constitution(path: Path) -> Constitution:
    """Read a constitution file; ConfigError naming the file and field when its ```toml block is missing or wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("constitution file not found", path=path, fix="pass an existing constitution file") from None
    blocks = _TOML_BLOCK.findall(text)
    if len(blocks) != 1:
        raise ConfigError(
            f"a constitution needs exactly one fenced ```toml block of rule parameters; found {len(blocks)}",
            path=path,
            fix=f"start from the default constitution ({DEFAULT_CONSTITUTION_PATH.name}) and keep its ```toml block",
        )
    try:
        data = tomllib.loads(blocks[0])
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the ```toml block is not valid TOML: {exc}", path=path, fix="correct its syntax") from None
    if "text" in data:
        raise ConfigError("field `text` is not a rule parameter", path=path, fix="remove it from the ```toml block")
    try:
        return Constitution.model_validate({**data, "text": text})
    except ValidationError as err:
        problems = []
        for e in err.errors():
            name = ".".join(str(p) for p in e["loc"]) or "(block)"
            fix = {"missing": "add it", "extra_forbidden": "remove it or check its spelling"}.get(e["type"], "fix it")
            problems.append(f"field `{name}`: {e['msg']} ({fix})")
        raise ConfigError(
            "invalid rule parameters in the ```toml block:\n  " + "\n  ".join(problems),
            path=path,
            fix="compare with the default constitution's block",
        ) from None
