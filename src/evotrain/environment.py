"""What a process evotrain starts may inherit from the orchestrator's environment: never its credentials.

Trial steps and agents are code the campaign does not trust with the external target's token or cloud keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD|CREDENTIAL", re.IGNORECASE)


def scrub_env(env: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
    """A copy of `env` without credential-like variables, except those named in `keep`."""
    kept = set(keep)
    return {k: v for k, v in env.items() if k in kept or not SECRET_NAME.search(k)}
