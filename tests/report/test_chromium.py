"""The report opens in a real browser: headless Chromium screenshots it and dumps the DOM it rendered."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from evotrain.report import write_report

from .checks import CampaignFiles, displayed_value, parse_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"),
]
WIDTH, HEIGHT = 1400, 3000


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_report_renders_in_headless_chromium(finished_campaign: Path, tmp_path: Path) -> None:
    report = write_report(finished_campaign, tmp_path / "report.html")
    screenshot = tmp_path / "report.png"
    chromium(tmp_path / "profile", f"--screenshot={screenshot}", f"--window-size={WIDTH},{HEIGHT}", report.as_uri())

    image = Image.open(screenshot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50, "a page of text, tables and plots, not a blank or error page"
    # the page is drawn down the whole window (the trajectory, figures and round tables fill 3000 px)
    bottom = image.crop((0, HEIGHT - 600, WIDTH, HEIGHT)).getcolors(maxcolors=1 << 20)
    assert bottom is not None and len(bottom) > 20

    dom = chromium(tmp_path / "profile", "--dump-dom", report.as_uri()).stdout
    rendered = parse_report(dom)
    source = parse_report(report.read_text())
    assert rendered.tags.get("svg") == 2, "both figures are in the rendered DOM"
    assert dom.count("<path") > 20 and "<text" in dom, "the figures hold drawn paths and labels"
    for table in ("trajectory", "calibration", "candidates", "policy", "costs"):
        assert f'<table class="{table}"' in dom, table
    assert len(rendered.numbers) == len(source.numbers) > 100
    assert [c.attrs["data-value"] for c in rendered.numbers] == [c.attrs["data-value"] for c in source.numbers]


# Test-only: measured in the browser and written onto <body>, so --dump-dom carries the layout back.
LAYOUT_PROBE = """<script>
const box = (el) => el.getBoundingClientRect();
document.body.setAttribute("data-layout", JSON.stringify({
  page: document.documentElement.scrollWidth,
  tables: [...document.querySelectorAll("table")].map((t) => [t.className, box(t).right]),
  overflow: [...document.querySelectorAll("div.scroll, td, th")].filter((e) => e.scrollWidth > e.clientWidth + 1)
    .map((e) => e.textContent.slice(0, 40)),
  verdict: [box(document.getElementById("verdict")).top, box(document.getElementById("verdict")).bottom],
  trajectory: box(document.getElementById("trajectory")).top,
}));
</script>"""
FIRST_SCREEN = 900  # px of a 1400-px-wide window


def test_first_screen_is_the_verdict_and_every_table_fits_1400_px(finished_campaign: Path, tmp_path: Path) -> None:
    report = write_report(finished_campaign, tmp_path / "report.html")
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    dom = chromium(tmp_path / "profile", f"--window-size={WIDTH},{FIRST_SCREEN}", "--dump-dom", probed.as_uri()).stdout
    layout = json.loads(html.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))  # type: ignore[union-attr]

    assert layout["page"] <= WIDTH, "nothing scrolls sideways"
    wide = [(name, right) for name, right in layout["tables"] if right > WIDTH]
    assert not wide, f"tables wider than {WIDTH} px: {wide}"
    assert not layout["overflow"], f"cut off or scrolled: {layout['overflow']}"
    top, bottom = layout["verdict"]
    assert top < layout["trajectory"] and bottom <= FIRST_SCREEN, "the verdict card is the first screen"

    # the card's figures, as the browser rendered them, are the files' values
    files = CampaignFiles(finished_campaign)
    card = dom[dom.index('<section id="verdict"') : dom.index("</section>", dom.index('<section id="verdict"'))]
    numbers = parse_report(card).numbers
    refs = {c.attrs["data-ref"].split(":")[0] + ":" + c.attrs["data-ref"].split(":")[-1] for c in numbers}
    assert {"manifest:external.score", "aggregate:total", "evidence:calibration.external_threshold"} <= refs
    for cell in numbers:
        ref = cell.attrs["data-ref"]
        assert float(cell.attrs["data-value"]) == pytest.approx(files.expected(ref), rel=1e-12, abs=1e-12), ref
        shown, tolerance = displayed_value(cell.text, cell.attrs["data-kind"])
        assert abs(shown - float(cell.attrs["data-value"])) <= tolerance, ref
    before = files.expected(next(c.attrs["data-ref"] for c in numbers if "external.score" in c.attrs["data-ref"]))
    gain = files.verdict_value("verdict_gain")
    threshold = next(float(c.attrs["data-value"]) for c in numbers if "external_threshold" in c.attrs["data-ref"])
    answer = "Improved beyond the external noise" if gain > threshold else "No confirmed improvement"
    assert answer in card and f"{before:.4f}" in card
