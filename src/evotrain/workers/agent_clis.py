"""The coding-agent CLIs evotrain drives: their npm packages, the versions it was tested with, a version check at
start, and a pinned install (`python -m evotrain.workers.agent_clis install [PREFIX]`, what `.ci/run` runs).

evotrain passes each CLI flags and configuration that exist only from a given version on (Claude Code's `--tools`,
`--permission-prompts`, `--include-partial-messages`; Codex's `allow_login_shell`, `--ephemeral`): an older CLI
would reject them or ignore them silently, so a worker refuses to start with one, naming the npm command that
installs the tested version. A newer one is accepted (its event stream is parsed leniently).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from evotrain.errors import ConfigError


@dataclass(frozen=True)
class AgentCLI:
    command: str  # the executable's name
    package: str  # its npm package
    tested: str  # the version the tests run (and `.ci/run` installs)

    @property
    def pin(self) -> str:
        return f"{self.package}@{self.tested}"


CLAUDE_CODE = AgentCLI("claude", "@anthropic-ai/claude-code", "2.1.328")
CODEX = AgentCLI("codex", "@openai/codex", "0.169.0")
CLIS = (CLAUDE_CODE, CODEX)

DEFAULT_PREFIX = Path(sys.prefix) / "agent-clis"  # inside the venv: never on PATH by accident
VERSION_TIMEOUT_S = 60.0


def _version_tuple(text: str) -> tuple[int, int, int]:
    major, minor, patch = text.split(".")
    return int(major), int(minor), int(patch)


@functools.cache
def cli_version(executable: str) -> str | None:
    """The x.y.z that `EXE --version` prints ("2.1.328 (Claude Code)", "codex-cli 0.169.0"); None if none."""
    try:
        argv = [executable, "--version"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", proc.stdout)
    return found.group(0) if proc.returncode == 0 and found else None


def check_version(cli: AgentCLI, executable: str, worker: str) -> str:
    """The CLI's version; a ConfigError naming the install command when it is unreadable or older than tested."""
    fix = f"npm install -g {cli.pin} (or `python -m evotrain.workers.agent_clis install`, then executable = …)"
    version = cli_version(executable)
    if version is None:
        raise ConfigError(
            f"the {worker} worker could not read a version from `{executable} --version`: is it the {cli.package} CLI?",
            fix=fix,
        )
    if _version_tuple(version) < _version_tuple(cli.tested):
        raise ConfigError(
            f"the {worker} worker needs {cli.package} {cli.tested} or newer; `{executable}` is {version}",
            fix=fix,
        )
    return version


def installed(prefix: Path = DEFAULT_PREFIX) -> dict[str, Path]:
    """The CLIs of a pinned install under `prefix` that are present, by command name."""
    found = {}
    for cli in CLIS:
        exe = prefix / "node_modules" / ".bin" / cli.command
        if exe.exists():
            found[cli.command] = exe
    return found


def install(prefix: Path = DEFAULT_PREFIX) -> dict[str, Path]:
    """`npm install` the tested versions into `prefix` (about 760 MB with their native binaries). Needs node and npm."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise ConfigError(
            "installing the agent CLIs needs node and npm, which are not on PATH",
            fix="install Node.js 20 or newer (it brings npm)",
        )
    prefix.mkdir(parents=True, exist_ok=True)
    argv = [npm, "install", "--prefix", str(prefix), "--no-fund", "--no-audit", "--save-exact"]
    proc = subprocess.run([*argv, *(cli.pin for cli in CLIS)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(
            f"npm install of {', '.join(cli.pin for cli in CLIS)} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-800:]}",
            fix="check that the npm registry is reachable (npm config get registry)",
        )
    found = installed(prefix)
    for cli in CLIS:
        if cli.command not in found:
            raise ConfigError(f"npm installed {cli.pin} but {cli.command} is not in {prefix}/node_modules/.bin")
        check_version(cli, str(found[cli.command]), cli.command)
    return found


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "install" or len(argv) > 2:
        print("usage: python -m evotrain.workers.agent_clis install [PREFIX]", file=sys.stderr)
        return 2
    prefix = Path(argv[1]) if len(argv) == 2 else DEFAULT_PREFIX
    try:
        found = install(prefix.resolve())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for command, exe in found.items():
        print(f"{command} {cli_version(str(exe))} {exe}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
