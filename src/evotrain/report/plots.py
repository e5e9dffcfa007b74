"""The report's figures, drawn with matplotlib and embedded as inline SVG.

Inline SVG rather than plotly: a campaign's figures hold tens to hundreds of points, so a static SVG is a few tens of
kilobytes, scales without blur, and needs no script; plotly's self-contained mode inlines ~4 MB of JavaScript in
every report. `Figure` is used directly (not pyplot) so drawing holds no global state and is safe off the main thread.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from evotrain.report.model import CampaignReport, DomainCalibrationView

DEV_COLOR = "#1f5fa8"
EXTERNAL_COLOR = "#d9730d"
DECOUPLED_COLOR = "#c0392b"

_SVG_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, searchable
    "svg.hashsalt": "evotrain-report",  # stable element ids, so the same campaign renders the same file
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _to_svg(fig: Figure, title: str) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context(_SVG_STYLE):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Title": title})
    svg = buf.getvalue()
    # Drop the XML prolog and DOCTYPE: the SVG is inlined into HTML, where they are not allowed.
    return svg[svg.index("<svg") :] if "<svg" in svg else svg


def trajectory_svg(report: CampaignReport) -> str:
    """Best dev and best external per round on one axis, with each round's anchor and its noise band."""
    with matplotlib.rc_context(_SVG_STYLE):
        fig = Figure(figsize=(9, 4.2))
        ax = fig.add_subplot()
        _draw_trajectory(ax, report)
    return _to_svg(fig, "dev and external per round")


def _draw_trajectory(ax: Axes, report: CampaignReport) -> None:
    rounds = report.rounds
    xs = [r.round for r in rounds for c in r.candidates if c.objective is not None]
    ys = [c.objective for r in rounds for c in r.candidates if c.objective is not None]
    ax.scatter(xs, ys, s=14, color="#9aa5b1", alpha=0.7, label="every candidate (dev)", zorder=2)

    dev_band = _anchor_band(report, "dev")
    if dev_band:
        bx, mid, half = zip(*dev_band, strict=True)
        _band(ax, bx, mid, half, DEV_COLOR, "anchor dev ± noise band")
    ext_band = _anchor_band(report, "external")
    if ext_band:
        bx, mid, half = zip(*ext_band, strict=True)
        _band(ax, bx, mid, half, EXTERNAL_COLOR, "anchor external ± noise band")

    dev = [(r.round, r.best_dev.objective) for r in rounds if r.best_dev and r.best_dev.objective is not None]
    if dev:
        ax.plot(*zip(*dev, strict=True), color=DEV_COLOR, marker="o", linewidth=2, label="best dev (objective)")
    ext = [(r.round, r.best_external.external) for r in rounds if r.best_external and r.best_external.external]
    if ext:
        ax.plot(*zip(*ext, strict=True), color=EXTERNAL_COLOR, marker="s", linewidth=2, label="best external")

    ax.set_xlabel("round")
    ax.set_ylabel(f"{report.metric} ({'higher' if report.sign > 0 else 'lower'} is better)")
    ax.set_xticks([r.round for r in rounds])
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def _band(ax: Axes, xs: Any, mid: Any, half: Any, color: str, label: str) -> None:
    """The anchor with its noise band: error bars (visible even for one round), shaded between rounds."""
    ax.errorbar(xs, mid, yerr=half, fmt="_", color=color, alpha=0.6, capsize=5, markersize=10, label=label)
    if len(xs) > 1:
        low = [m - h for m, h in zip(mid, half, strict=True)]
        high = [m + h for m, h in zip(mid, half, strict=True)]
        ax.fill_between(xs, low, high, color=color, alpha=0.10)
        ax.plot(xs, mid, color=color, linestyle=":", linewidth=1)


def _anchor_band(report: CampaignReport, which: str) -> list[tuple[int, float, float]]:
    """(round, anchor score, noise band) for each round whose evidence measured a band for that score."""
    out = []
    for r in report.rounds:
        cal = r.calibration
        if r.anchor is None or cal is None:
            continue
        score = r.anchor.objective if which == "dev" else r.anchor.external
        band = cal.dev_noise_band if which == "dev" else cal.external_noise_band
        if score is not None and band is not None:
            out.append((r.round, score, band))
    return out


def calibration_svg(report: CampaignReport) -> str:
    """Per domain: dev gain against external gain across candidates; decoupled domains in red."""
    views = report.calibration
    cols = min(4, max(1, len(views)))
    rows = math.ceil(len(views) / cols) if views else 1
    with matplotlib.rc_context(_SVG_STYLE):
        fig = Figure(figsize=(3.2 * cols, 3.0 * rows))
        for i, view in enumerate(views):
            _draw_domain(fig.add_subplot(rows, cols, i + 1), view)
        fig.supxlabel("dev gain on the domain over the round's anchor")
        fig.supylabel("external gain over the anchor")
        fig.tight_layout()
    return _to_svg(fig, "dev gain against external gain per domain")


def _draw_domain(ax: Axes, view: DomainCalibrationView) -> None:
    color = DECOUPLED_COLOR if view.decoupled else DEV_COLOR
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.axvline(0, color="#888", linewidth=0.8)
    if view.noise_band is not None:
        ax.axvspan(-view.noise_band, view.noise_band, color="#888", alpha=0.12, label="domain noise band")
    if view.points:
        ax.scatter([p.dev_gain for p in view.points], [p.external_gain for p in view.points], s=18, color=color)
    title = view.domain + ("  — DECOUPLED" if view.decoupled else "")
    if view.spearman is not None:
        title += f"\nSpearman {view.spearman:+.2f}, n={len(view.points)}"
    ax.set_title(title, color=color, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    if view.decoupled:
        for spine in ax.spines.values():
            spine.set_color(DECOUPLED_COLOR)
            spine.set_linewidth(2)
    ax.grid(True, alpha=0.3)
