"""`netsleuth watch` from the command line: output, store, and one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth.store import Store
from netsleuth_testing.watching import stored_probes

NETSLEUTH = [sys.executable, "-m", "netsleuth"]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NETSLEUTH, *argv], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.netns
def test_watch_json_summary_and_store(make_netns: Callable[..., Path], tmp_path: Path) -> None:
    path = make_netns("watch")
    with IPRoute(netns=path.name) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    store = tmp_path / "w.sqlite"
    proc = _run(
        "watch",
        "--target",
        f"netns:{path.name}",
        "--probe",
        "icmp:127.0.0.1",
        "--probe",
        "tcp:127.0.0.1:9",
        "--rate",
        "20",
        "--count",
        "5",
        "--store",
        str(store),
        "--json",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    by_probe = {s["probe"]: s for s in out["series"]}
    assert by_probe["icmp:127.0.0.1"]["outcomes"] == {"ok": 5}
    assert by_probe["tcp:127.0.0.1:9"]["outcomes"] == {"refused": 5}
    assert f"read it with: netsleuth report {store}" in proc.stderr
    with Store(store) as s:
        [run] = s.runs()
        assert run.targets == [f"netns:{path.name}"] and len(s.probes()) == 10


@pytest.mark.netns
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--target", "netns:nslt-does-not-exist", "--probe", "icmp:127.0.0.1"],
            "network namespace nslt-does-not-exist does not exist",
        ),
        (["--target", "bogus:x", "--probe", "icmp:127.0.0.1"], "unknown kind 'bogus'"),
        (["--probe", "dns:1.2.3.4/x/NOPE"], "unknown record type"),
        (["--probe", "icmp:127.0.0.1", "--rate", "0"], "must be greater than 0"),
        (["--probe", "icmp:127.0.0.1", "--store", "/proc/nope/s.sqlite"], "store"),
    ],
)
def test_watch_errors_are_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    proc = _run("watch", "--count", "1", "--quiet", *argv)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_watch_needs_root_and_says_so(as_nobody: list[str]) -> None:
    proc = subprocess.run(
        [*as_nobody, *NETSLEUTH, "watch", "--probe", "icmp:127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "netsleuth: error: netsleuth watch needs root (network namespaces, netlink); "
        "run it with sudo"
    ]


def test_help_teaches_targets_and_probes() -> None:
    proc = _run("watch", "--help")
    assert proc.returncode == 0
    for word in ("netns:NAME", "container:NAME", "dns:SERVER/NAME", "resolve:NAME", "examples:"):
        assert word in proc.stdout


@pytest.mark.netns
def test_sigterm_flushes_the_store_and_closes_the_run(
    make_netns: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_netns("term")
    with IPRoute(netns=path.name) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    store = tmp_path / "w.sqlite"
    proc = subprocess.Popen(
        [
            *NETSLEUTH,
            "watch",
            "--target",
            f"netns:{path.name}",
            "--probe",
            "icmp:127.0.0.1",
            "--rate",
            "50",
            "--store",
            str(store),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = stored_probes(store, 50, proc, within_s=60.0)  # however slow the start
    assert seen, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    sent_at = time.time_ns()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "Traceback" not in err
    assert f"everything recorded so far is in {store}" in " ".join(err.split())
    with Store(store) as s:
        [run] = s.runs()
        cols = s.probe_columns()
    assert run.ended_ns is not None
    assert len(cols) >= seen
    assert sent_at - int(cols.wall_ns.max()) < 300_000_000  # nothing before the signal lost
