"""`evotrain.toml`: the contract between evotrain and a training stack (see docs/substrate-format.md)."""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evotrain.errors import ConfigError
from evotrain.fileio import iter_tree

SPEC_FILENAME = "evotrain.toml"
STEP_NAMES = ("prepare", "train", "evaluate", "evaluate_all", "predict")
Step = Literal["prepare", "train", "evaluate", "evaluate_all", "predict"]
PLACEHOLDERS = frozenset({"python", "sandbox", "work", "checkpoints", "checkpoint", "seed", "output"})
_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_]+)\}")


def checkpoint_folders(checkpoints: Path) -> list[Path]:
    """The checkpoint folders `train` wrote under `{checkpoints}`, in training order (by name); hidden (in-progress)
    folders are skipped (docs/substrate-format.md)."""
    if not checkpoints.is_dir():
        return []
    return sorted(p for p in checkpoints.iterdir() if p.is_dir() and not p.name.startswith("."))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Commands(_Strict):
    prepare: str | None = None
    train: str
    evaluate: str
    # Optional: every checkpoint in one process ({output} is a folder, one report <name>.json per checkpoint),
    # for stacks whose start-up (imports, loading an inference engine) costs more than evaluating one checkpoint.
    evaluate_all: str | None = None
    predict: str | None = None

    @field_validator("prepare", "train", "evaluate", "evaluate_all", "predict")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        if value is None:
            return value
        unknown = sorted(set(_PLACEHOLDER_RE.findall(value)) - PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
                f"known: {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}"
            )
        if not value.strip():
            raise ValueError("empty command")
        return value

    def for_step(self, step: Step) -> str | None:
        value: str | None = getattr(self, step)
        return value


class Resources(_Strict):
    cpus: Annotated[int, Field(ge=1)] = 1
    gpus: Annotated[int, Field(ge=0)] = 0
    memory_gb: Annotated[float, Field(gt=0)] = 4.0
    timeout_s: Annotated[float, Field(gt=0)] = 3600.0


class ResourceOverride(_Strict):
    cpus: Annotated[int, Field(ge=1)] | None = None
    gpus: Annotated[int, Field(ge=0)] | None = None
    memory_gb: Annotated[float, Field(gt=0)] | None = None
    timeout_s: Annotated[float, Field(gt=0)] | None = None


class ResourceTable(_Strict):
    default: Resources = Resources()
    prepare: ResourceOverride = ResourceOverride()
    train: ResourceOverride = ResourceOverride()
    evaluate: ResourceOverride = ResourceOverride()
    evaluate_all: ResourceOverride = ResourceOverride()
    predict: ResourceOverride = ResourceOverride()

    def for_step(self, step: Step) -> Resources:
        override: ResourceOverride = getattr(self, step)
        return self.default.model_copy(update=override.model_dump(exclude_none=True))


MetricKind = Literal["auto", "success_rate", "continuous"]


class Metric(_Strict):
    name: str
    direction: Literal["maximize", "minimize"] = "maximize"
    domains: Annotated[list[str], Field(min_length=1)]
    aggregate: Literal["items", "domains"] = "items"
    # What one item's score is, for the item-sampling noise (docs/substrate-format.md): "success_rate" (each item
    # scores 0 or 1: the binomial sd applies), "continuous" (any number: the sd of the per-item scores), or
    # "auto" (success rate when every item score of the anchor's report is 0 or 1, else continuous).
    kind: MetricKind = "auto"

    @field_validator("domains")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("domain names must be unique")
        return value

    @property
    def sign(self) -> float:
        """+1 when larger is better: multiply a score difference by this to get a gain."""
        return 1.0 if self.direction == "maximize" else -1.0

    @property
    def better(self) -> str:
        """The word for a change in the good direction of a score ("higher" or "lower")."""
        return "higher" if self.direction == "maximize" else "lower"

    @property
    def worse(self) -> str:
        return "lower" if self.direction == "maximize" else "higher"


KnobType = Literal["float", "int", "choice", "bool", "weights"]


class Knob(_Strict):
    """One recipe value the offline mutator may change: a dotted key inside an editable TOML file."""

    file: str
    key: str
    type: KnobType
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | int | float] | None = None

    @model_validator(mode="after")
    def _range_fits_type(self) -> Knob:
        if self.type in ("float", "int", "weights"):
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} knob needs `low` and `high`")
            if self.low >= self.high:
                raise ValueError(f"`low` ({self.low}) must be below `high` ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scaled knob needs `low` > 0")
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice knob needs a non-empty `choices` list")
        if self.type != "choice" and self.choices is not None:
            raise ValueError(f'`choices` is only for type = "choice", not {self.type!r}')
        return self


class Axis(_Strict):
    category: str
    description: str = ""
    knobs: Annotated[dict[str, Knob], Field(min_length=1)]


class SearchSpace(_Strict):
    axes: dict[str, Axis] = {}

    @field_validator("axes")
    @classmethod
    def _axis_names_are_folder_safe(cls, value: dict[str, Axis]) -> dict[str, Axis]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or name in ("anchor", "replicate"):
                raise ValueError(
                    f"axis name {name!r} must be letters, digits, '_' or '-' (it names candidate folders), "
                    "and not 'anchor' or 'replicate'"
                )
        return value

    def categories(self) -> list[str]:
        return sorted({axis.category for axis in self.axes.values()})


class SubstrateSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    editable: Annotated[list[str], Field(min_length=1)]
    frozen: list[str] = []
    commands: Commands
    resources: ResourceTable = ResourceTable()
    metric: Metric
    search: SearchSpace = SearchSpace()

    @model_validator(mode="after")
    def _knobs_in_editable_files(self) -> SubstrateSpec:
        for axis_name, axis in self.search.axes.items():
            for knob_name, knob in axis.knobs.items():
                if not matches_any(knob.file, self.editable):
                    raise ValueError(
                        f"search.axes.{axis_name}.knobs.{knob_name}.file = {knob.file!r} is not an editable path; "
                        "add it to `editable` or point the knob at an editable file"
                    )
                if matches_any(knob.file, self.frozen):
                    raise ValueError(f"search.axes.{axis_name}.knobs.{knob_name}.file = {knob.file!r} is frozen")
        return self

    def is_editable(self, relpath: str) -> bool:
        return matches_any(relpath, self.editable) and not matches_any(relpath, self.frozen)

    def is_frozen(self, relpath: str) -> bool:
        return matches_any(relpath, self.frozen)


@functools.lru_cache(maxsize=512)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a path glob where `**` crosses folders and `*` does not.

    fnmatch alone lets `*` cross `/`, which would make `eval/*` match `eval/sub/x`; pathlib's
    `full_match` (3.13+) is not available on 3.11.
    """
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def matches_any(relpath: str, patterns: list[str]) -> bool:
    """Whether a substrate-relative path matches a glob, or lies under a plain folder name, of `patterns`."""
    relpath = relpath.replace("\\", "/").removeprefix("./")
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if glob_to_regex(pattern).match(relpath):
            return True
        if not any(ch in pattern for ch in "*?") and relpath.startswith(pattern + "/"):
            return True
    return False


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it, or check its spelling against docs/substrate-format.md",
}


def format_validation_error(path: Path, err: ValidationError) -> ConfigError:
    lines = []
    for e in err.errors():
        field = _field_path(e["loc"])
        fix = _FIXES.get(e["type"], "see docs/substrate-format.md")
        lines.append(f"field `{field}`: {e['msg']} (fix: {fix})")
    return ConfigError(
        "invalid configuration:\n  " + "\n  ".join(lines), path=path, fix="correct the fields named above"
    )


def parse_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", path=path, fix="create it, or pass the right path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path, fix="correct the TOML syntax") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}: {exc.reason})", path=path, fix="save the file as UTF-8"
        ) from None


def check_paths(spec: SubstrateSpec, substrate_dir: Path) -> None:
    """The globs against the substrate's files: each `editable` and `frozen` pattern matches a file, and no file
    is both editable and frozen. ConfigError names the pattern or the file."""
    path = substrate_dir / SPEC_FILENAME
    files = [relpath for relpath, _ in iter_tree(substrate_dir)]
    for field, patterns in (("editable", spec.editable), ("frozen", spec.frozen)):
        for pattern in patterns:
            if not any(matches_any(f, [pattern]) for f in files):
                raise ConfigError(
                    f"field `{field}`: {pattern!r} matches no file of the substrate",
                    path=path,
                    fix=f"correct the pattern, or remove it from `{field}`",
                )
    for relpath in files:
        if matches_any(relpath, spec.editable) and matches_any(relpath, spec.frozen):
            editable = next(p for p in spec.editable if matches_any(relpath, [p]))
            frozen = next(p for p in spec.frozen if matches_any(relpath, [p]))
            raise ConfigError(
                f"{relpath!r} is both editable ({editable!r}) and frozen ({frozen!r}); they must not overlap",
                path=path,
                fix="narrow one of the two patterns so that no file matches both",
            )


def load_spec(substrate_dir: Path) -> SubstrateSpec:
    """Read and validate `<substrate_dir>/evotrain.toml`; raise ConfigError naming the field and the fix."""
    path = substrate_dir / SPEC_FILENAME
    if not substrate_dir.is_dir():
        raise ConfigError("substrate folder not found", path=substrate_dir, fix="pass the folder holding evotrain.toml")
    if not path.exists():
        raise ConfigError(
            f"no {SPEC_FILENAME} in the substrate folder",
            path=path,
            fix="write one (see docs/substrate-format.md)",
        )
    data = parse_toml(path)
    try:
        return SubstrateSpec.model_validate(data)
    except ValidationError as err:
        raise format_validation_error(path, err) from None
