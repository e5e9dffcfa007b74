"""The report opens in a real browser: headless Chromium screenshots it and dumps the DOM it rendered."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from evotrain.report import write_report

from .checks import parse_report

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
