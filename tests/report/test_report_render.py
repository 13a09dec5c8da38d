"""JSON, terminal and HTML renderers on analyses of synthetic stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from netsleuth.analysis import Analysis, analyze
from netsleuth.report import render_terminal, to_json, write_html
from netsleuth.store import Store
from netsleuth_testing.synthetic import generate, write_store


@pytest.fixture(scope="module")
def flap(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    path = tmp_path_factory.mktemp("flap") / "flap.sqlite"
    write_store(path, generate("flap", seconds=45))
    with Store(path) as store:
        return analyze(store)


def test_json_has_the_documented_keys_and_is_strict_json(flap: Analysis) -> None:
    doc = to_json(flap)
    text = json.dumps(doc, allow_nan=False)  # no NaN/Infinity sneaks in
    doc = json.loads(text)
    assert doc["verdict"]["cause"] == "bridge-mac-flap"
    assert doc["verdict"]["bridge"] == "lbr0"
    assert doc["verdict"]["confidence"] == "high"
    assert doc["verdict"]["p_value"] < 1e-6
    assert {t["target"] for t in doc["targets"]} == {"host", "netns:lab0", "netns:lab1"}
    host = next(t for t in doc["targets"] if t["target"] == "host")
    assert host["failed"] == 0 and host["ci95"][0] == 0.0 < host["ci95"][1]
    assert doc["episodes_total"] == len(doc["episodes"]) == 30
    ep = doc["episodes"][0]
    assert set(ep) >= {"target", "start", "start_ns", "end_ns", "duration_s", "failed", "before"}
    top = doc["correlations"][0]
    assert top["significant"] and top["bridge"] == "lbr0"
    assert set(top) >= {"key", "window_s", "relative_risk", "p_value", "p_adjusted"}
    assert doc["bridges"][0]["name"] == "lbr0" and doc["bridges"][0]["pinned"] is False
    assert len(to_json(flap, max_episodes=5)["episodes"]) == 5


def test_terminal_shows_verdict_fix_and_tables(flap: Analysis) -> None:
    console = Console(record=True, width=140)
    render_terminal(flap, console)
    out = console.export_text()
    assert "verdict: bridge-mac-flap" in out
    assert "netsleuth fix bridge lbr0" in out
    assert "Failure rate per target" in out and "netns:lab0" in out
    assert "port left bridge lbr0" in out
    assert "host control did not fail" in out


def test_html_is_self_contained_with_an_svg_timeline(flap: Analysis, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    write_html(flap, page)
    text = page.read_text()
    assert "<svg" in text and "bridge-mac-flap" in text and "netsleuth fix bridge lbr0" in text
    # nothing is fetched: no scripts, stylesheets, or external images
    for needle in ("<script", "<link", 'src="http', 'href="http', "url(http"):
        assert needle not in text
