"""Replay the decoupling flag over finished campaign folders under variants of its rule (no training, seconds).

    python benchmarks/flag_replay.py CAMPAIGN [CAMPAIGN ...]     # e.g. runs/bench/search_baselines/*-s*/campaign

For every round of every campaign, the flag is recomputed from the manifests up to that round (their per-domain dev
scores and external scores) and that round's evidence (domain noise bands, k, the external threshold), under:
  current   the rule in evidence/stats.decoupling as it stands;
  own       a move counts only where the domain's own dev score moved the way its excess did (a domain stuck at
            zero while the others rise does not "fall");
  extscale  the common movement and the implied transfer on the external scale (× the campaign's robust slope of
            external gain on dev gain, clipped to [0.1, 1]);
  both      own and extscale;
  floor     a domain's noise band no narrower than the binomial sd at (x + 1) / (n + 2) of its round anchor's
            items (a domain at 0 or 1 has a band of 0, so any excess "moves" it);
  floor+own floor and own.
The candidates are the ones the campaign ran under the rule it had: later decisions would differ under a variant, so
this reads what each rule says about the same evidence, not what a campaign under it would do. Prints, per variant,
how many campaigns had a puzzles domain with a shifted external split flagged, an unshifted one flagged (a false
flag), and the designed trap domain (equations) flagged; and, as a check of the replay itself, the rounds where the
current rule recomputed here disagrees with the flags the campaign's evidence recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evotrain.evidence import stats
from evotrain.evidence.noise import external_reference
from evotrain.evidence.reading import selected_eval
from evotrain.records.manifest import Manifest, read_manifest
from evotrain.substrate.spec import SubstrateSpec, load_spec
from evotrain.trial.evaluation import domain_shares

SHIFTED = {"unit_conversion", "gravity", "equations", "bit_manipulation"}


VARIANTS = ("current", "own", "extscale", "both", "floor", "floor+own")
# per-domain dev gains, external gain, domain shares, overall dev gain
Row = tuple[dict[str, float], float, dict[str, float], float]


def manifests(camp: Path) -> list[Manifest]:
    return [read_manifest(f) for f in sorted(camp.glob("rounds/r*/candidates/*/manifest.json"))]


def submitted_rows(spec: SubstrateSpec, history: list[Manifest]) -> list[Row]:
    """What calibration_points (evidence/calibration.py) pairs for each submitted candidate up to a round."""
    anchors = stats.reference_anchors(history)
    rows = []
    for m in history:
        ckpt = selected_eval(m)
        anchor = anchors.get(m.round)
        anchor_ckpt = selected_eval(anchor) if anchor else None
        reference = external_reference(history, m.round)
        if m.role == "anchor" or m.external is None or ckpt is None or anchor_ckpt is None:
            continue
        if reference is None or reference.external is None:
            continue
        sign = spec.metric.sign
        gains = {d: sign * (s.score - anchor_ckpt.domains[d].score) for d, s in ckpt.domains.items()}
        shares = domain_shares(spec.metric, {d: s.n for d, s in anchor_ckpt.domains.items()})
        external = sign * (m.external.score - reference.external.score)
        rows.append((gains, external, shares, sign * (ckpt.overall - anchor_ckpt.overall)))
    return rows


def band_floor(history: list[Manifest], round_no: int) -> dict[str, float]:
    anchor = stats.round_anchor(history, round_no)
    ckpt = selected_eval(anchor) if anchor else None
    out = {}
    for d, s in (ckpt.domains if ckpt else {}).items():
        p = (s.score * s.n + 1) / (s.n + 2)
        out[d] = (p * (1 - p) / s.n) ** 0.5
    return out


def flagged(spec: SubstrateSpec, history: list[Manifest], evidence: dict, round_no: int, variant: str) -> set[str]:
    """The domains a variant of the rule flags on a round's evidence."""
    rows = submitted_rows(spec, history)
    slope = 1.0
    if variant in ("extscale", "both") and len(rows) >= 3:
        fitted = stats.robust_slope([dev for *_, dev in rows], [e for _, e, _, _ in rows])
        slope = min(max(fitted if fitted is not None else 1.0, 0.1), 1.0)
    floor = band_floor(history, round_no) if variant.startswith("floor") else {}
    own = variant in ("own", "both", "floor+own")
    out = set()
    for d, band in evidence["domain_noise_bands"].items():
        if band is None:
            continue
        pairs, shares = [], []
        for gains, external, share, _ in rows:
            others = [g for o, g in gains.items() if o != d]
            common = sum(others) / len(others)
            excess = gains[d] - common
            if own and gains[d] * excess <= 0:
                excess = 0.0  # the domain's own score did not move the way its excess says: no move
            pairs.append((excess, external - slope * common))
            shares.append(share.get(d, 0.0) * slope)
        threshold = evidence["k"] * max(band, floor.get(d, 0.0))
        if stats.decoupling(
            pairs, dev_threshold=threshold, external_threshold=evidence["external_threshold"], shares=shares
        ).decoupled:
            out.add(d)
    return out


def replay(camp: Path, variant: str) -> tuple[dict[str, int], list[int]]:
    """(domain → first round flagged, rounds where `current` disagrees with the recorded evidence)."""
    spec = load_spec(camp / "substrate")
    every = manifests(camp)
    first: dict[str, int] = {}
    disagree = []
    for r in sorted({m.round for m in every}):
        path = camp / f"rounds/r{r:04d}/evidence.json"
        if not path.exists():  # a round still running
            continue
        evidence = json.loads(path.read_text())["calibration"]
        found = flagged(spec, [m for m in every if m.round <= r], evidence, r, variant)
        if variant == "current" and found != set(evidence["decoupled_domains"]):
            disagree.append(r)
        for d in found:
            first.setdefault(d, r)
    return first, disagree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("campaigns", nargs="+", type=Path)
    camps = parser.parse_args().campaigns
    bad = [c for c in camps if not (c / "substrate" / "evotrain.toml").is_file() or not (c / "rounds").is_dir()]
    if bad:
        parser.error(
            f"not a campaign folder (no substrate/evotrain.toml or rounds/): {', '.join(map(str, bad))}; pass the "
            "folder `evotrain init` made, e.g. runs/bench/search_baselines/evotrain-s1/campaign"
        )
    for variant in VARIANTS:
        found = [replay(c, variant) for c in camps]
        shifted = sum(any(d in SHIFTED for d in f) for f, _ in found)
        false = sum(any(d not in SHIFTED for d in f) for f, _ in found)
        trap = sum("equations" in f for f, _ in found)
        print(
            f"{variant:9s} {len(camps)} campaigns: shifted domain flagged {shifted}, unshifted {false}, "
            f"equations {trap}"
        )
        for camp, (_, disagree) in zip(camps, found, strict=True):
            if disagree:
                print(f"  replay disagrees with the recorded evidence of {camp}, rounds {disagree}", file=sys.stderr)


if __name__ == "__main__":
    main()
