"""The rolling policy as Markdown: what workers read before editing, and what people audit."""

from __future__ import annotations

from collections.abc import Sequence

from evotrain.records.policy import DeadEnd, Policy, Provenance

DEAD_ENDS_TITLE = "Don't waste budget on"


def _provenance(items: Sequence[Provenance]) -> str:
    return "; ".join(f"round {p.round}: {p.action} — {p.reason}" for p in items) or "—"


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "not yet measured" if x is None else format(x, spec)


def _standing_recipe(policy: Policy) -> list[str]:
    recipe = policy.standing_recipe
    if not recipe.files:
        return ["The substrate as it is: nothing has been promoted yet. Every fork starts from the substrate."]
    lines = [
        f"Every fork inherits this recipe (promoted from `{recipe.source or 'unknown'}`); it is applied to each "
        "sandbox, never written into the substrate.",
        "",
        "Files: " + ", ".join(f"`{f}`" for f in sorted(recipe.files)),
    ]
    if recipe.changes:
        lines += ["", "Promoted changes:"]
        for c in recipe.changes:
            lines.append(f"- {c.axis}.{c.knob} ({c.file}:{c.key}) → {c.new!r}")
    if recipe.diff:
        fence = "````" if "```" in recipe.diff else "```"
        lines += ["", f"{fence}diff", recipe.diff.rstrip("\n"), fence]
    if recipe.provenance:
        lines += ["", f"Provenance: {_provenance(recipe.provenance)}"]
    return lines


def _axes(policy: Policy) -> list[str]:
    lines = ["### Active", ""]
    active = policy.active_axes()
    lines += [f"- **{a.name}** ({a.category}) — {_provenance(a.provenance)}" for a in active] or ["- none"]
    retired = [a for a in policy.axes if a.status == "retired"]
    lines += ["", "### Retired", ""]
    lines += [f"- **{a.name}** ({a.category}) — {_provenance(a.provenance)}" for a in retired] or ["- none"]
    return lines


def _dead_end(d: DeadEnd) -> str:
    what = d.axis + (f".{d.knob}" if d.knob else "")
    if d.direction == "set":
        what += f" set to {d.value!r}"
    elif d.direction:
        what += f" ({d.direction})"
    evidence = f" Evidence: {d.evidence}" if d.evidence else ""
    return f"- [round {d.round}] **{what}**: {d.description}.{evidence}"


def _noise(policy: Policy) -> list[str]:
    n = policy.noise
    return [
        f"- promotion threshold = k · band = {n.k:g} · {_fmt(n.band)} = **{_fmt(n.threshold)}** "
        f"(seed sd {_fmt(n.seed_sd)}, item sd {_fmt(n.item_sd)}; {n.anchor_observations} anchor run(s))",
        f"- {n.anchors_per_round} anchor(s) per round (the standing recipe unchanged, fresh seeds)",
        f"- a win within ×(1 + {n.replicate_margin:g}) of the threshold is replicated with {n.replicates} fresh "
        f"seed(s) before promotion",
        f"- external noise sd: {_fmt(n.external_sd)} (assumed {n.external_sd_default:g} until measured)",
        f"- the external target counts as flat for axis rotation only when its split could have seen a gain of the "
        f"size tested with power ≥ {n.min_external_power:g}",
        f"- provenance: {_provenance(n.provenance)}",
    ]


def _objective(policy: Policy) -> list[str]:
    o = policy.objective
    mode = {
        "optimize_dev": "rank by the weighted dev objective, in the metric's direction",
        "proxy_aware": "proxy-aware: some dev domains no longer predict the external target",
    }[o.mode]
    lines = [
        f"- mode: **{o.mode}** ({mode})",
        f"- checkpoints are selected by: {o.checkpoint_criterion}",
        "- untrusted domains: " + (", ".join(f"**{d}**" for d in o.untrusted_domains) or "none"),
        "",
        "| domain | weight |",
        "|---|---|",
    ]
    lines += [f"| {d} | {w:g} |" for d, w in sorted(o.domain_weights.items())]
    lines += ["", f"Provenance: {_provenance(o.provenance)}"]
    return lines


def _external(policy: Policy) -> list[str]:
    best = "none yet" if policy.best_external is None else f"{policy.best_external:.4f} ({policy.best_external_source})"
    return [
        f"- best external score: {best}",
        f"- measured rounds without external improvement: {policy.rounds_without_external_gain}",
        f"- submitted each round: the top {policy.external_plan.submit_top} by the objective, and the anchor every "
        f"{policy.external_plan.submit_anchor_every} round(s)",
    ]


def render_policy_markdown(policy: Policy) -> str:
    sections: list[tuple[str, list[str]]] = [
        ("Standing recipe", _standing_recipe(policy)),
        ("Axes", _axes(policy)),
        (DEAD_ENDS_TITLE, [_dead_end(d) for d in policy.dead_ends] or ["Nothing yet."]),
        ("Noise rules", _noise(policy)),
        ("Selection objective", _objective(policy)),
        ("External target", _external(policy)),
        ("Asks", [f"- {a}" for a in policy.asks] or ["Nothing beyond your axis."]),
        (
            "Replicate before promoting",
            [f"- `{c}`: re-run with a fresh seed" for c in policy.replicate] or ["Nothing this round."],
        ),
        *([("Run together, on the standing recipe", [f"- `{c}`" for c in policy.combine])] if policy.combine else []),
        ("Changelog", [f"- round {p.round}: {p.action} — {p.reason}" for p in policy.changelog] or ["—"]),
    ]
    parent = f"`{policy.parent_sha256[:16]}`" if policy.parent_sha256 else "none (the initial policy)"
    lines = [f"# Search policy for round {policy.round}", "", f"Replaces policy {parent}."]
    for title, body in sections:
        lines += ["", f"## {title}", "", *body]
    return "\n".join(lines) + "\n"
