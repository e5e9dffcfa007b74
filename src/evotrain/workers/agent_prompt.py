"""The task text every agent worker gets after the fixed brief: its axis, its knobs, its sandbox, its commands."""

from __future__ import annotations

from evotrain.workers.protocol import WorkerRequest

TRIAL_COMMANDS = (
    "`evotrain trial train` (prepare + train on your sandbox's recipe), `evotrain trial evaluate` (score every "
    "checkpoint on the dev split, as the harness reads it), `evotrain trial logs` (the end of the last logs)"
)


def knob_lines(request: WorkerRequest) -> list[str]:
    lines = []
    for name, knob in request.axis.knobs.items():
        if knob.type == "choice":
            bounds = f"one of {knob.choices}"
        elif knob.type == "bool":
            bounds = "true or false"
        else:
            bounds = f"{knob.low:g} … {knob.high:g}" + (" (log scale)" if knob.log else "")
        lines.append(f"- `{name}`: `{knob.key}` in `{knob.file}` ({knob.type}, {bounds})")
    return lines


def task_prompt(request: WorkerRequest, *, tool_style: str) -> str:
    """`tool_style` says how trials are run: "shell" for coding-agent CLIs, "tools" for the API tool loop."""
    spec = request.spec
    how = (
        f"Run trials only with these shell commands in your sandbox: {TRIAL_COMMANDS}."
        if tool_style == "shell"
        else "Run trials only with the `run_trial` tool (train, evaluate, logs); finish with the `finish` tool."
    )
    dead = [f"- round {d.round}: {d.description}" for d in request.dead_ends if d.axis == request.axis_name]
    parts = [
        f"# Your task: candidate {request.candidate_id}, round {request.round}",
        f"Axis: **{request.axis_name}** ({request.axis.category}) — {request.axis.description or 'no description'}",
        "Declared knobs of this axis:",
        *knob_lines(request),
        f"Your sandbox is the current directory. Editable paths: {', '.join(spec.editable)}. "
        f"Frozen (never touch): {', '.join(spec.frozen) or 'none declared'}.",
        how,
        "Dead ends on your axis (do not propose these):",
        *(dead or ["- none"]),
        "End with a one-paragraph rationale: what you changed (old → new), why, and what result would confirm or "
        "refute it.",
        "",
        "# The search policy in force",
        request.policy_markdown,
    ]
    return "\n".join(parts)
