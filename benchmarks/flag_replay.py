"""Replay the decoupling flag over finished campaign folders under variants of its rule (no training, seconds).

    python benchmarks/flag_replay.py CAMPAIGN [CAMPAIGN ...]     # e.g. runs/bench/search_baselines/*-s*/campaign

For every round of every campaign, the flag is recomputed from the manifests up to that round (their per-domain dev
scores and external scores) and that round's evidence (domain noise bands, k, the external threshold), under:
  current   the rule in evidence/stats.decoupling as it stands;
  own       a move counts only where the domain's own dev score moved the way its excess did (a domain stuck at
            zero while the others rise does not "fall");
  extscale  the common movement and the implied transfer on the external scale (× the campaign's robust slope of
            external gain on dev gain, clipped to [0.1, 1]);
  both      own and extscale.
The candidates are the ones the campaign ran under the rule it had: later decisions would differ under a variant, so
this reads what each rule says about the same evidence, not what a campaign under it would do. Prints, per variant,
how many campaigns had a puzzles domain with a shifted external split flagged, an unshifted one flagged (a false
flag), and the designed trap domain (equations) flagged.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evotrain.evidence import stats
from evotrain.evidence.noise import external_reference
from evotrain.evidence.reading import selected_eval
from evotrain.records.manifest import read_manifest
from evotrain.substrate.spec import load_spec
from evotrain.trial.evaluation import domain_shares

SHIFTED = {"unit_conversion", "gravity", "equations", "bit_manipulation"}


def manifests(camp: Path) -> list:
    return [read_manifest(f) for f in sorted(camp.glob("rounds/r*/candidates/*/manifest.json"))]


def flags(camp: Path, variant: str) -> dict[str, int]:
    spec = load_spec(camp / "substrate")
    allm = manifests(camp)
    rounds = sorted({m.round for m in allm})
    first = {}
    for r in rounds:
        ev = json.loads((camp / f"rounds/r{r:04d}/evidence.json").read_text())["calibration"]
        k, ext_thr, bands = ev["k"], ev["external_threshold"], ev["domain_noise_bands"]
        hist = [m for m in allm if m.round <= r]
        anchors = stats.reference_anchors(hist)
        devg, extg = [], []
        rows = []
        for m in hist:
            ck = selected_eval(m)
            if m.external is None or ck is None or m.role == "anchor":
                continue
            a = anchors.get(m.round)
            ref = external_reference(hist, m.round)
            ack = selected_eval(a) if a else None
            if ack is None or ref is None or ref.external is None:
                continue
            eg = m.external.score - ref.external.score
            g = {d: s.score - ack.domains[d].score for d, s in ck.domains.items() if d in ack.domains}
            sh = domain_shares(spec.metric, {d: s.n for d, s in ack.domains.items()})
            rows.append((g, eg, sh))
            devg.append(ck.overall - ack.overall)
            extg.append(eg)
        slope = 1.0
        if variant in ("extscale", "both") and len(devg) >= 3:
            sl = stats.robust_slope(devg, extg)
            slope = min(max(sl if sl is not None else 1.0, 0.1), 1.0)
        for d in spec.metric.domains:
            thr = bands.get(d)
            if thr is None:
                continue
            thr = k * thr
            pairs, shs = [], []
            for g, eg, sh in rows:
                others = [v for o, v in g.items() if o != d]
                common = sum(others) / len(others)
                ex = g[d] - common
                if variant in ("own", "both") and not (g[d] * ex > 0):
                    ex = 0.0  # the domain itself did not move that way: no move
                pairs.append((ex, eg - slope * common))
                shs.append(sh.get(d, 0.0) * slope)
            if stats.decoupling(pairs, dev_threshold=thr, external_threshold=ext_thr, shares=shs).decoupled:
                first.setdefault(d, r)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("campaigns", nargs="+", type=Path)
    camps = parser.parse_args().campaigns
    for variant in ("current", "own", "extscale", "both"):
        found = [flags(c, variant) for c in camps]
        shifted = sum(any(d in SHIFTED for d in f) for f in found)
        false = sum(any(d not in SHIFTED for d in f) for f in found)
        trap = sum("equations" in f for f in found)
        print(
            f"{variant:9s} {len(camps)} campaigns: shifted domain flagged {shifted}, unshifted {false}, "
            f"equations {trap}"
        )


if __name__ == "__main__":
    main()
