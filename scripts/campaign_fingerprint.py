"""A behaviour fingerprint of the round loop: a 2-round × 4-candidate campaign on examples/tiny, fixed seed.

Writes one JSON holding every manifest, evidence.json and policy.json of the campaign, with what legitimately
differs between two runs removed: times, durations, absolute paths and host names. Run it before and after a
change that must not change behaviour, then diff the two files:

    .venv/bin/python scripts/campaign_fingerprint.py /tmp/fingerprint_before.json
    ... change ...
    .venv/bin/python scripts/campaign_fingerprint.py /tmp/fingerprint_after.json
    diff /tmp/fingerprint_before.json /tmp/fingerprint_after.json && echo identical
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SEED = 7
VOLATILE_KEYS = re.compile(
    r"(^|_)(time|times|at|started|finished|ended|elapsed|duration|wall|seconds|host|hostname|pid)(_|$)"
)


def _volatile(key: str) -> bool:
    return bool(VOLATILE_KEYS.search(key)) or key.endswith("_s")


def normalize(value: Any, tmp: str) -> Any:
    if isinstance(value, dict):
        return {k: ("<volatile>" if _volatile(k) else normalize(v, tmp)) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [normalize(v, tmp) for v in value]
    if isinstance(value, str):
        return value.replace(tmp, "<tmp>").replace(str(ROOT), "<repo>").replace(socket.gethostname(), "<host>")
    return value


def run_campaign(tmp: Path) -> Path:
    substrate = tmp / "tiny"
    shutil.copytree(EXAMPLES / "tiny", substrate, ignore=shutil.ignore_patterns("__pycache__"))
    run = tmp / "run"
    scorer = f"{sys.executable} {EXAMPLES / 'tiny_score.py'} --answers {EXAMPLES / 'tiny_external_answers.jsonl'}"
    spec = tmp / "external.toml"
    spec.write_text(
        f'kind = "command"\ncommand = {json.dumps(scorer + " --predictions {predictions}")}\n'
        f"cwd = {json.dumps(str(EXAMPLES))}\n"
    )
    evotrain = [sys.executable, "-m", "evotrain"]
    init = ["init", str(run), "--substrate", str(substrate), "--external", str(spec), "--seed", str(SEED)]
    subprocess.run([*evotrain, *init], check=True)
    subprocess.run([*evotrain, "run", str(run), "--rounds", "2", "--workers", "4", "--parallel", "2"], check=True)
    return run


def fingerprint(run: Path, tmp: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = ("manifest.json", "evidence.json", "policy.json")
    for path in sorted(p for name in names for p in run.rglob(name) if "sandbox" not in p.relative_to(run).parts):
        out[str(path.relative_to(run))] = normalize(json.loads(path.read_text()), tmp)
    return out


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/fingerprint.json")
    with tempfile.TemporaryDirectory(prefix="evotrain-fingerprint-") as tmp:
        run = run_campaign(Path(tmp))
        target.write_text(json.dumps(fingerprint(run, tmp), indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
