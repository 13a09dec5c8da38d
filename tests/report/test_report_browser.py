"""The HTML page in a real headless Chromium: the timeline is drawn."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from netsleuth.analysis import analyze
from netsleuth.report import write_html
from netsleuth.store import Store
from netsleuth_testing.synthetic import generate, write_store

pytestmark = pytest.mark.browser

OK_RGB = (0x2E, 0x9E, 0x4F)  # colour of an all-ok time bin in the timeline
FAIL_RGB = (0xD7, 0x26, 0x3D)  # colour of an all-failed time bin


def screenshot(page: Path, tmp_path: Path) -> np.ndarray:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian package chromium; scripts/setup does it)")
    png = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1200,1600",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    assert png.exists() and png.stat().st_size > 0
    img = imread(png)
    return (img[..., :3] * 255).round().astype(np.int16)


def pixels_like(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 10) -> int:
    return int((np.abs(img - np.array(rgb)).max(axis=-1) <= tol).sum())


@pytest.mark.parametrize(("scenario", "fails"), [("flap", True), ("quiet", False)])
def test_timeline_is_drawn_in_chromium(tmp_path: Path, scenario: str, fails: bool) -> None:
    store = tmp_path / "s.sqlite"
    write_store(store, generate(scenario, seconds=30))
    with Store(store) as s:
        analysis = analyze(s)
    page = tmp_path / "report.html"
    write_html(analysis, page)
    img = screenshot(page, tmp_path)
    assert img.shape[0] >= 1600 and img.shape[1] >= 1200
    assert pixels_like(img, OK_RGB) > 50_000  # the plot area is there and not blank
    red = pixels_like(img, FAIL_RGB)
    if fails:
        assert red > 2_000  # outages are drawn
    else:
        assert red == 0
