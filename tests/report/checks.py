"""Parse a rendered report and check its numbers against the campaign's files, read as plain JSON.

The expected values are read here with `json`, not through evotrain's models, and aggregates are recomputed here,
so a wrong field, a wrong sum or a wrong format in the report shows up as a mismatch.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

NUMBER_TEXT = re.compile(r"^[+-]?\$?[\d,]*\.?\d+( s| min| h| d)?$")
UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass
class Cell:
    tag: str
    attrs: dict[str, str]
    text: str = ""


@dataclass
class ReportParser(HTMLParser):
    """Collects every element carrying `data-value`, and every table cell, with its text."""

    numbers: list[Cell] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)
    _open: list[Cell] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag in ("td", "span", "th"):
            cell = Cell(tag, {k: v or "" for k, v in attrs})
            self._open.append(cell)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "span", "th") and self._open:
            cell = self._open.pop()
            cell.text = cell.text.strip()
            if "data-value" in cell.attrs:
                self.numbers.append(cell)
            if cell.tag == "td":
                self.cells.append(cell)
            if self._open:
                self._open[-1].text += cell.text

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text += data


def parse_report(html: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(html)
    return parser


def displayed_value(text: str, kind: str) -> tuple[float, float]:
    """The number a reader sees, and half its last displayed digit (the rounding the display allows)."""
    text = text.replace(",", "").replace("$", "")
    scale = 1.0
    if kind == "seconds":
        text, unit = text.split(" ")
        scale = UNIT_SECONDS[unit]
    decimals = len(text.split(".")[1]) if "." in text else 0
    return float(text) * scale, 0.5 * 10**-decimals * scale + 1e-12


def resolve(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


class CampaignFiles:
    """The campaign's manifests, evidence and policies as plain JSON."""

    def __init__(self, run: Path) -> None:
        self.manifests: dict[str, dict[str, Any]] = {}
        self.evidence: dict[int, dict[str, Any]] = {}
        self.policies: dict[int, dict[str, Any]] = {}
        self.round_traces: dict[int, list[dict[str, Any]]] = {}
        for rd in sorted((run / "rounds").iterdir()):
            number = int(rd.name[1:])
            self.policies[number] = json.loads((rd / "policy.json").read_text())
            if (rd / "evidence.json").exists():
                self.evidence[number] = json.loads((rd / "evidence.json").read_text())
            if (rd / "round.jsonl").exists():
                self.round_traces[number] = [json.loads(x) for x in (rd / "round.jsonl").read_text().splitlines()]
            for manifest in sorted((rd / "candidates").glob("*/manifest.json")) if (rd / "candidates").exists() else []:
                m = json.loads(manifest.read_text())
                self.manifests[m["candidate_id"]] = m

    def in_round(self, number: int | None) -> list[dict[str, Any]]:
        return [m for m in self.manifests.values() if number is None or m["round"] == number]

    def expected(self, ref: str) -> Any:
        source, key, path = ref.split(":", 2)
        if source == "manifest":
            m = self.manifests[key]
            if path.endswith("/3600"):
                return resolve(m, path.removesuffix("/3600")) / 3600
            if "+" in path:
                return sum(resolve(m, p) for p in path.split("+"))
            return resolve(m, path)
        if source == "evidence":
            return resolve(self.evidence[int(key)], path)
        if source == "policy":
            return resolve(self.policies[int(key)], path)
        assert source == "aggregate", ref
        return self.aggregate(key, path)

    def aggregate(self, name: str, scope: str) -> Any:
        number = None if scope == "total" else int(scope) if scope.isdigit() else None
        ms = self.in_round(number)
        if name == "best_dev":
            return max(m["selected"]["objective"] for m in ms if m["selected"])
        if name == "best_external":
            return max(m["external"]["score"] for m in ms if m["external"])
        if name == "candidates":
            return len(ms)
        if name == "rounds":
            return len(self.round_traces_planned())
        if name == "elapsed_s":
            rounds = self.round_traces_planned() if number is None else [number]
            return sum(self.elapsed(r) for r in rounds)
        if name == "calibration_points":
            return sum(
                1
                for ev in self.evidence.values()
                for c in ev["candidates"]
                if c["external_gain"] is not None and scope in c["domain_gains"]
            )
        if name.startswith("verdict_") or name == "promotions":
            return self.verdict_value(name)
        cost_field = {"cpu_h": "cpu_s", "gpu_h": "gpu_s"}.get(name, name)
        total = sum(m["cost"][cost_field] for m in ms)
        return total / 3600 if name in ("cpu_h", "gpu_h") else total

    def closed_rounds(self) -> list[int]:
        """Rounds whose next round has a policy: the verdict reads these."""
        return [r for r in sorted(self.policies) if r + 1 in self.policies]

    def verdict_value(self, name: str) -> float:
        """The verdict card's figures, recomputed: the round-1 anchor's external score (before), the best external
        score of the closed rounds (after), and after − before ± 1.96·√2·sd with the latest evidence's sd."""
        closed = self.closed_rounds()
        if name == "promotions":
            return sum(1 for r in closed for p in self.policies[r + 1]["changelog"] if p["action"] == "promote")
        ms = [m for m in self.manifests.values() if m["round"] in closed]
        anchor = min((m for m in ms if m["round"] == 1 and m["role"] == "anchor"), key=lambda m: m["candidate_id"])
        gain = max(m["external"]["score"] for m in ms if m["external"]) - anchor["external"]["score"]
        sd = self.evidence[max(closed)]["calibration"]["external_noise_band"]
        half = 1.959963984540054 * math.sqrt(2.0) * sd
        return {"verdict_gain": gain, "verdict_low": gain - half, "verdict_high": gain + half}[name]

    def round_traces_planned(self) -> list[int]:
        return [r for r, events in self.round_traces.items() if any(e["kind"] == "planned" for e in events)]

    def elapsed(self, number: int) -> float:
        events = self.round_traces[number]
        planned = next(e["ts"] for e in events if e["kind"] == "planned")
        closed = next((e["ts"] for e in events if e["kind"] == "round_closed"), None)
        return closed - planned if closed is not None else 0.0
