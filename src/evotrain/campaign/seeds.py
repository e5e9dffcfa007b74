"""Seeds derived from the campaign seed: stable across processes and Python versions (hash() is salted)."""

from __future__ import annotations

import hashlib


def derive_seed(campaign_seed: int, *parts: object) -> int:
    text = "/".join([str(campaign_seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF
