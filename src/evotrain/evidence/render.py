"""The round evidence as Markdown for people and agents: the five `##` sections in their fixed order.

Every `##` heading starts with its section name (what `evotrain audit` checks); anything finer is `###`.
"""

from __future__ import annotations

from collections.abc import Sequence

from evotrain.records.evidence import SECTIONS, Calibration, Evidence, Interval

SECTION_TITLES = {
    "candidates": "per-candidate summary",
    "patterns": "axis effects against the anchor",
    "calibration": "dev against the external target",
    "surprises": "what did not go as expected",
    "rationale_audit": "on axis, within editable paths, policy compliance",
}


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "—" if x is None else format(x, fmt)


def _signed(x: float | None) -> str:
    return _num(x, "+.4f")


def _interval(iv: Interval | None) -> str:
    return "—" if iv is None else f"[{iv.low:+.4f}, {iv.high:+.4f}]"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _candidates(evidence: Evidence) -> list[str]:
    rows = [
        [
            s.candidate_id,
            s.role + (f" of {s.replicate_of}" if s.replicate_of else ""),
            s.axis or "—",
            s.status,
            _num(s.dev_overall),
            _num(s.objective),
            _signed(s.gain),
            _interval(s.gain_interval),
            "yes" if s.above_noise else "no",
            _num(s.external),
            _signed(s.external_gain),
            "; ".join(s.changes) or "—",
        ]
        for s in evidence.candidates
    ]
    lines = _table(
        [
            "candidate",
            "role",
            "axis",
            "status",
            "dev",
            "objective",
            "gain",
            "95% interval",
            "above noise",
            "external",
            "ext. gain",
            "changes",
        ],
        rows,
    )
    domains = sorted({d for s in evidence.candidates for d in s.domain_gains})
    if domains:
        lines += ["", "### per-domain dev gain over the anchor", ""]
        lines += _table(
            ["candidate", *domains],
            [
                [s.candidate_id, *(_signed(s.domain_gains.get(d)) for d in domains)]
                for s in evidence.candidates
                if s.domain_gains
            ],
        )
    methods = sorted({s.gain_method for s in evidence.candidates if s.gain_method})
    if methods:
        lines += ["", "Intervals: " + "; ".join(methods) + "."]
    return lines


def _patterns(evidence: Evidence) -> list[str]:
    if not evidence.patterns:
        return ["No axis was explored this round."]
    return _table(
        ["axis", "category", "candidates", "mean gain", "best gain", "above noise", "best ext. gain", "verdict"],
        [
            [
                p.axis,
                p.category,
                ", ".join(p.candidates) or "—",
                _signed(p.mean_gain),
                _signed(p.best_gain),
                p.above_noise,
                _signed(p.external_gain),
                p.verdict,
            ]
            for p in evidence.patterns
        ],
    )


def _kind(kind: str | None) -> str:
    return {"success_rate": "a success rate (binomial item noise)", "continuous": "continuous (per-item sd)"}.get(
        kind or "", "—"
    )


def _power(cal: Calibration) -> list[str]:
    p = cal.external_power
    if p is None:
        return []
    power = "unknown" if p.power is None else f"{p.power:.2f}"
    verdict = {True: "resolves it", False: "**cannot resolve it**", None: "unknown"}[p.resolves]
    return [
        f"- external power: {power} to see a gain of {_signed(p.effect)} (minimum {p.min_power:.2f}): the split "
        f"{verdict}; it resolves gains of {_signed(p.resolvable_gain)} or more",
        f"  - how: {p.note}",
    ]


def _calibration(cal: Calibration) -> list[str]:
    lines = [
        f"- dev noise band {_num(cal.dev_noise_band)} (seed sd {_num(cal.seed_sd)}, item sd {_num(cal.item_sd)}); "
        f"promotion threshold k·band = {_num(cal.dev_threshold)} with k = {cal.k:g}",
        f"- how: {cal.noise_note}" if cal.noise_note else "- how: —",
        f"- dev item scores: {_kind(cal.metric_kind)} ({cal.metric_kind_how})" if cal.metric_kind else "",
        f"- external noise band {_num(cal.external_noise_band)} (from {cal.external_noise_source or '—'}); "
        f"external threshold {_num(cal.external_threshold)}",
        f"- {len(cal.points)} candidate(s) with an external score; mean dev−external gap {_signed(cal.mean_gap)}",
        f"- Spearman rank correlation of external gain on dev gain: {_num(cal.spearman, '+.3f')} "
        f"(95% interval {_interval(cal.spearman_interval)}); Theil–Sen slope {_num(cal.slope, '+.3f')}",
        "- decoupled proxy domains: " + (", ".join(f"**{d}**" for d in cal.decoupled_domains) or "none"),
        *_power(cal),
    ]
    lines = [line for line in lines if line]
    if cal.points:
        lines += ["", "### points", ""]
        lines += _table(
            ["candidate", "round", "dev", "external", "gap", "dev gain", "ext. gain"],
            [
                [
                    p.candidate_id,
                    p.round,
                    _num(p.dev),
                    _num(p.external),
                    _signed(p.gap),
                    _signed(p.dev_gain),
                    _signed(p.external_gain),
                ]
                for p in cal.points
            ],
        )
    if cal.per_domain:
        lines += ["", "### per domain: dev gain on the domain against the external gain", ""]
        lines += _table(
            [
                "domain",
                "points",
                "Spearman",
                "slope",
                "noise band",
                "dev moved past noise (beyond other domains)",
                "of them ext. did not follow",
                "decoupled",
            ],
            [
                [
                    d.domain,
                    d.points,
                    _num(d.spearman, "+.3f"),
                    _num(d.slope, "+.3f"),
                    _num(cal.domain_noise_bands.get(d.domain)),
                    d.dev_gain_above_noise,
                    d.external_flat_among_them,
                    "**yes**" if d.decoupled else "no",
                ]
                for d in cal.per_domain
            ],
        )
    return lines


def _surprises(evidence: Evidence) -> list[str]:
    if not evidence.surprises:
        return ["None."]
    return [
        f"- **{s.kind}**" + (f" ({s.candidate_id})" if s.candidate_id else "") + f": {s.description}"
        for s in evidence.surprises
    ]


def _audit(evidence: Evidence) -> list[str]:
    return _table(
        ["candidate", "stayed on axis", "within editable paths", "policy compliant", "notes"],
        [
            [
                a.candidate_id,
                _yes(a.stayed_on_axis),
                _yes(a.within_editable_paths),
                _yes(a.policy_compliant),
                "; ".join(a.notes) or "—",
            ]
            for a in evidence.rationale_audit
        ],
    )


def render_evidence_markdown(evidence: Evidence) -> str:
    bodies = {
        "candidates": _candidates(evidence),
        "patterns": _patterns(evidence),
        "calibration": _calibration(evidence.calibration),
        "surprises": _surprises(evidence),
        "rationale_audit": _audit(evidence),
    }
    lines = [
        f"# Round {evidence.round} evidence",
        "",
        f"Policy in force: `{evidence.policy_sha256[:16]}`. Gains are objective gains over this round's anchor "
        "(positive = better).",
    ]
    for name in SECTIONS:
        lines += ["", f"## {name} — {SECTION_TITLES[name]}", "", *bodies[name]]
    return "\n".join(lines) + "\n"
