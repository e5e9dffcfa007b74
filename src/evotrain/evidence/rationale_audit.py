"""Section 5, rationale audit: whether each worker's edit matches its axis, its paths and the policy."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

from evotrain.evidence.context import RoundContext
from evotrain.evidence.reading import added_lines, split_diff
from evotrain.records.evidence import RationaleAuditEntry
from evotrain.records.manifest import Manifest
from evotrain.substrate.spec import SubstrateSpec


def audit_rationale(m: Manifest, ctx: RoundContext) -> RationaleAuditEntry:
    """Stayed on axis, within editable paths, complied with the policy — and why not, in notes.

    On axis: every recorded change names the candidate's axis, and every file the worker edited (beyond what it
    inherited) either holds one of the axis's knobs or holds no knob at all (free-form code such as a data
    pipeline, which any axis may touch; noted). A file holding only other axes' knobs is off axis. Edits inside a
    file shared by several axes are judged by the recorded changes alone.
    """
    notes: list[str] = []
    inherited = _inherited_diff(m, ctx)
    edited = _worker_edited_files(m, inherited)
    on_axis = _check_axis(m, edited, ctx, notes)
    within = _check_paths(m, notes)
    compliant = _check_policy(m, inherited, ctx, notes)
    return RationaleAuditEntry(
        candidate_id=m.candidate_id,
        stayed_on_axis=on_axis,
        within_editable_paths=within,
        policy_compliant=compliant,
        notes=notes,
    )


def _inherited_diff(m: Manifest, ctx: RoundContext) -> dict[str, str]:
    """What the candidate's fork started from: the standing recipe, or for a replicate its source's recipe (unless
    it was rebased: its source's changes applied on the standing recipe in force, recorded as its changes)."""
    if m.role == "replicate" and m.replicate_of and not m.changes:
        source = next((h for h in ctx.history if h.candidate_id == m.replicate_of), None)
        if source is not None:
            return split_diff(source.recipe_diff)
    return split_diff(ctx.policy.standing_recipe.diff)


def _worker_edited_files(m: Manifest, inherited: Mapping[str, str]) -> list[str]:
    sections = split_diff(m.recipe_diff)
    edited = {f for f in m.edited_files if sections.get(f) != inherited.get(f)}
    edited |= {f for f in inherited if f not in sections}  # an inherited file put back to the substrate's content
    return sorted(edited)


def _knob_files(spec: SubstrateSpec) -> dict[str, set[str]]:
    files: dict[str, set[str]] = defaultdict(set)
    for axis_name, axis in spec.search.axes.items():
        for knob in axis.knobs.values():
            files[knob.file].add(axis_name)
    return files


def _check_axis(m: Manifest, edited: Sequence[str], ctx: RoundContext, notes: list[str]) -> bool:
    ok = True
    if m.role in ("replicate", "combination") and m.changes:
        return _check_carried(m, ctx.history, notes)
    if m.role in ("anchor", "replicate", "combination"):
        if m.changes or edited:
            notes.append(f"the {m.role} must run its recipe unchanged but edited {', '.join(edited) or 'knobs'}")
            ok = False
        return ok
    for c in m.changes:
        if c.axis != m.axis:
            notes.append(f"change {c.describe()} is on axis {c.axis!r}, not the assigned {m.axis!r}")
            ok = False
    return _check_axis_files(m, edited, ctx.spec, notes) and ok


def _check_carried(m: Manifest, history: Sequence[Manifest], notes: list[str]) -> bool:
    """A rebased replicate or a combination may make only the knob changes its source candidates made."""
    sources = [m.replicate_of] if m.role == "replicate" and m.replicate_of else m.combines
    made = {(c.key, repr(c.new)) for h in history if h.candidate_id in sources for c in h.changes}
    ok = True
    for c in m.changes:
        if (c.key, repr(c.new)) not in made:
            notes.append(f"change {c.describe()} is not one its source candidates ({', '.join(sources)}) made")
            ok = False
    return ok


def _check_axis_files(m: Manifest, edited: Sequence[str], spec: SubstrateSpec, notes: list[str]) -> bool:
    ok = True
    knob_files = _knob_files(spec)
    for f in edited:
        owners = knob_files.get(f)
        if owners is None:
            notes.append(f"edited free-form file {f} (holds no declared knob)")
        elif m.axis not in owners:
            notes.append(f"edited {f}, which holds knobs of {', '.join(sorted(owners))} only")
            ok = False
    return ok


def _check_paths(m: Manifest, notes: list[str]) -> bool:
    for v in m.violations:
        notes.append(f"violation: {v.kind} {v.path}" + (f" ({v.detail})" if v.detail else ""))
    return not m.violations


def _check_policy(m: Manifest, inherited: Mapping[str, str], ctx: RoundContext, notes: list[str]) -> bool:
    ok = True
    for c in m.changes:
        dead = next((d for d in ctx.policy.dead_ends if d.blocks(c.axis, c.knob, c.direction, c.new)), None)
        if dead is not None:
            notes.append(f"{c.describe()} is in the dead-end registry (round {dead.round}: {dead.description})")
            ok = False
    reverted = _reverted_lines(m, inherited)
    if reverted:
        notes.append(
            f"reverts {len(reverted)} inherited recipe line(s) without a recorded change: " + "; ".join(reverted[:5])
        )
        ok = False
    return ok


def _reverted_lines(m: Manifest, inherited: Mapping[str, str]) -> list[str]:
    """Inherited recipe lines missing from the candidate's diff that no recorded knob change explains."""
    sections = split_diff(m.recipe_diff)
    explained = _changed_key_names(m)
    out = []
    for relpath, section in inherited.items():
        present = set(added_lines(sections.get(relpath, "")))
        for line in added_lines(section):
            if not line or line in present:
                continue
            name = re.split(r"[\s=:]", line, maxsplit=1)[0].strip("\"'[]")
            if name not in explained:
                out.append(f"{relpath}: {line}")
    return out


def _changed_key_names(m: Manifest) -> set[str]:
    names: set[str] = set()
    for c in m.changes:
        names.add(c.key.rsplit(".", 1)[-1])
        names.add(c.key)
        for value in (c.old, c.new):
            if isinstance(value, Mapping):
                names.update(str(k) for k in value)
    return names
