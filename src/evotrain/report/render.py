"""Render a campaign's report to one self-contained HTML file (inline CSS and SVG, no script, no network).

Every number the page shows sits in an element carrying `data-value` (the exact value, `repr` of the float),
`data-kind` (how it is formatted) and `data-ref` (where it comes from), so a test, or a reader, can check each
displayed figure against the manifest, evidence or policy field it was read from:

- `manifest:<candidate id>:<dotted path>`  e.g. `manifest:r0001/c02-lr:selected.objective`
- `evidence:<round>:<dotted path>`          e.g. `evidence:3:calibration.dev_threshold`
- `policy:<round>:<dotted path>`            the policy in force for that round
- `aggregate:<name>:<round|total>`          a best or a sum over a round's (or all) manifests
"""

from __future__ import annotations

import math
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from evotrain.fileio import atomic_write_text
from evotrain.report.model import LEARNED_ACTIONS, CampaignReport, build_report
from evotrain.report.plots import calibration_svg, trajectory_svg

REPORT_FILENAME = "report.html"


def format_number(value: float | int, kind: str) -> str:
    """The displayed text of a number of a given kind (the same rule for every cell of that kind)."""
    if kind == "score":
        return f"{value:.4f}"
    if kind == "gain":
        return f"{value:+.4f}"
    if kind == "seconds":
        return format_duration(float(value))
    if kind == "hours":
        return f"{value:.3f}"
    if kind == "count":
        return f"{int(value):,}"
    if kind == "usd":
        return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    if kind == "weight":
        return f"{value:g}"
    raise ValueError(f"unknown number kind {kind!r}")


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _number(value: float | int | None, kind: str, ref: str, tag: str = "td", css: str = "") -> Markup:
    """A table cell (or span) holding one checkable number; a missing value renders as an en dash."""
    css = " ".join(filter(None, ["num", css]))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Markup(f'<{tag} class="{css} missing">–</{tag}>')
    text = format_number(value, kind)
    return Markup(
        f'<{tag} class="{css}" data-value="{escape(repr(value))}" data-kind="{kind}" '
        f'data-ref="{escape(ref)}">{escape(text)}</{tag}>'
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evotrain.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["num"] = _number
    env.globals["learned_label"] = lambda action: LEARNED_ACTIONS.get(action, action)
    env.filters["duration"] = format_duration
    return env


def render_report(report: CampaignReport) -> str:
    """The report as one HTML document."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        trajectory_svg=trajectory_svg(report),
        calibration_svg=calibration_svg(report),
    )


def write_report(run_dir: Path, output: Path | None = None) -> Path:
    """Build and write `RUN/report.html` (or `output`); returns the path written."""
    report = build_report(run_dir)
    target = output or Path(report.root) / REPORT_FILENAME
    atomic_write_text(target, render_report(report))
    return target
