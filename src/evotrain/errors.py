"""User-facing errors: each names the file, the field and the fix, and the CLI prints it without a traceback."""

from __future__ import annotations

from pathlib import Path


class EvotrainError(Exception):
    """A mistake the user can fix, or a campaign invariant that was broken."""

    def __init__(self, message: str, *, path: Path | str | None = None, fix: str | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        fix = f"\n  fix: {self.fix}" if self.fix else ""
        return f"{where}{self.message}{fix}"


class ConfigError(EvotrainError):
    """A configuration file (evotrain.toml, campaign.toml, an external-target spec…) is invalid."""


class IntegrityError(EvotrainError):
    """A hash-locked file (substrate snapshot, constitution, manifest, policy chain) does not match its record."""


class ConstitutionViolation(EvotrainError):
    """A policy update breaks a rule of the frozen constitution."""
