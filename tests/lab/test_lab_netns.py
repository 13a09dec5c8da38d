"""The lab end to end, through the CLI as a user runs it: the outage with an
unpinned bridge, none when pinned or with arp_notify, the machine's own
network untouched, and cleanup after Ctrl-C, SIGTERM and SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from netsleuth import netns
from netsleuth.lab import LAB_STATE_DIR, LabConfig, build_lab
from netsleuth.netns.owners import process_start_time

pytestmark = pytest.mark.lab

NETSLEUTH = [sys.executable, "-m", "netsleuth"]


def _host_network_state() -> dict[str, Any]:
    """What the lab must never change in the machine's own namespace."""

    def run(*argv: str) -> Any:
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return json.loads(out) if out.strip() else None

    links = run("ip", "-j", "link", "show")
    sysctls = {}
    for path in sorted(Path("/proc/sys/net/ipv4/conf").glob("*/*")):
        if path.name in ("arp_notify", "forwarding", "rp_filter", "proxy_arp"):
            sysctls[str(path)] = path.read_text()
    sysctls["ip_forward"] = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    return {
        "links": sorted(
            (ln["ifname"], ln.get("address"), ln.get("mtu"), ln.get("master")) for ln in links
        ),
        "addrs": run("ip", "-j", "addr", "show"),
        "routes": run("ip", "-j", "route", "show", "table", "all"),
        "rules": run("nft", "-j", "list", "ruleset"),
        "sysctls": sysctls,
    }


def _volatile_free(state: dict[str, Any]) -> dict[str, Any]:
    for addr in state["addrs"] or []:
        for info in addr.get("addr_info", []):
            info.pop("valid_life_time", None)
            info.pop("preferred_life_time", None)
        addr.pop("operstate", None)
    return state


def test_compare_low_churn_unpinned_fails_pinned_and_arp_notify_do_not() -> None:
    before = _volatile_free(_host_network_state())
    proc = subprocess.run(
        [
            *NETSLEUTH,
            "lab",
            "compare",
            "--churn-mac",
            "low",
            "--duration",
            "14",
            "--arp-notify",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    cases = {c["name"]: c for c in json.loads(proc.stdout)["cases"]}
    assert set(cases) == {"unpinned", "pinned", "arp_notify"}
    for case in cases.values():
        assert case["probes"] >= 220  # 20/s for 14 s, minus start-up
        assert set(case) >= {"name", "probes", "failed", "mac_changes", "outages"}
    unpinned = cases["unpinned"]
    assert unpinned["failed"] > 0 and unpinned["mac_changes"] > 0
    # Every real outage (more than one lost probe) began right after a port left:
    # the last event before it is the leave, or — when the first lost probe went
    # out in the few ms between the leave and our netlink monitor hearing of it —
    # the join 2 s earlier (t_in), with nothing in between.
    real = [o for o in unpinned["outages"] if o["failed"] > 1]
    assert real and all(
        o["before"] == "port-left" or (o["before"] == "port-joined" and o["ms_before"] > 1900)
        for o in real
    ), real
    assert sum(o["failed"] for o in real) >= 0.9 * unpinned["failed"]
    assert cases["pinned"]["failed"] == 0 and cases["pinned"]["mac_changes"] == 0
    assert cases["arp_notify"]["failed"] == 0 and cases["arp_notify"]["mac_changes"] > 0
    for case in cases.values():
        assert case["lab_id"] and not netns.list_named(f"nsl-{case['lab_id']}-")
    assert _volatile_free(_host_network_state()) == before


def _start_lab(*extra: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    before = set(LAB_STATE_DIR.glob("*.json")) if LAB_STATE_DIR.is_dir() else set()
    proc = subprocess.Popen(
        [*NETSLEUTH, "lab", "run", "--duration", "60", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = (
            [p for p in LAB_STATE_DIR.glob("*.json") if p not in before]
            if (LAB_STATE_DIR.is_dir())
            else []
        )
        for path in new:
            state = json.loads(path.read_text())
            if state["owner_pid"] == proc.pid and state["pids"]:
                time.sleep(2.0)  # probes and churn running
                return proc, json.loads(path.read_text())
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"lab did not come up: {proc.communicate()}")


def _lab_objects(state: dict[str, Any]) -> list[str]:
    names = [state["host_ns"], state["upstream_ns"], *state["container_ns"]]
    left = [n for n in names if netns.exists(n)]
    left += [
        f"pid {p['pid']}" for p in state["pids"] if process_start_time(p["pid"]) == p["start_time"]
    ]
    if (LAB_STATE_DIR / f"{state['run_id']}.json").exists():
        left.append("state file")
    if Path(f"/etc/netns/{state['container_ns'][0]}").exists():
        left.append("/etc/netns files")
    return left


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_tears_everything_down(sig: signal.Signals) -> None:
    proc, state = _start_lab("--churn-mac", "low")
    assert _lab_objects(state)  # it is really there
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert _lab_objects(state) == []


def test_sigkill_leaves_objects_that_clean_and_the_next_run_remove() -> None:
    proc, state = _start_lab()
    proc.kill()
    proc.wait()
    time.sleep(0.2)
    # dnsmasq dies with its owner; the namespaces stay until cleaned.
    assert netns.exists(state["host_ns"])
    clean = subprocess.run(
        [*NETSLEUTH, "lab", "clean"], capture_output=True, text=True, timeout=30, check=False
    )
    assert clean.returncode == 0 and state["host_ns"] in clean.stdout
    assert _lab_objects(state) == []

    proc, state = _start_lab()
    proc.kill()
    proc.wait()
    with build_lab(LabConfig()):  # the next lab run cleans up first
        assert _lab_objects(state) == []


def _cli(*argv: str, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    cmd = [*prefix, *NETSLEUTH, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_one_line_errors(as_nobody: list[str]) -> None:
    not_root = _cli("lab", "run", "--duration", "1", prefix=as_nobody)
    assert not_root.returncode != 0 and "needs root" in not_root.stderr
    assert len(not_root.stderr.strip().splitlines()) == 1

    bad = _cli("lab", "run", "--duration", "-3")
    assert bad.returncode == 2 and "must be greater than 0" in bad.stderr

    env = dict(os.environ, PATH="/nonexistent")
    missing = subprocess.run(
        [*NETSLEUTH, "lab", "run", "--duration", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert "install the Debian package" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    with build_lab(LabConfig(run_id="c011de")):
        clash = _cli("lab", "run", "--run-id", "c011de", "--duration", "1")
    assert clash.returncode == 1 and "already in use" in clash.stderr
    assert "Traceback" not in clash.stderr
