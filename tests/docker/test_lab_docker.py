"""`netsleuth lab compare --engine docker`: the reference's own setup, a second
dockerd on a pre-created unpinned bridge, with `docker run --rm` churn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from netsleuth import netns

pytestmark = [pytest.mark.docker, pytest.mark.lab]


def _root_links() -> list[str]:
    out = subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return sorted(link["ifname"] for link in json.loads(out))


def test_docker_compare_unpinned_fails_pinned_does_not() -> None:
    links_before = _root_links()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "netsleuth",
            "lab",
            "compare",
            "--engine",
            "docker",
            "--duration",
            "20",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cases = {c["name"]: c for c in json.loads(proc.stdout)["cases"]}
    unpinned, pinned = cases["unpinned"], cases["pinned"]
    assert unpinned["extra"]["engine"] == "docker"
    assert unpinned["probes"] >= 250 and pinned["probes"] >= 250  # 20/s for 20 s
    assert unpinned["failed"] > 0 and unpinned["mac_changes"] > 0
    assert unpinned["churn_cycles"] >= 4 and pinned["churn_cycles"] >= 4  # one per 3 s
    assert pinned["failed"] == 0 and pinned["mac_changes"] == 0
    for case in cases.values():
        assert not netns.list_named(f"nsl-{case['lab_id']}-")
        assert not Path(f"/run/netsleuth/docker/{case['lab_id']}").exists()
    assert _root_links() == links_before  # no docker0, no veth in the machine's namespace
