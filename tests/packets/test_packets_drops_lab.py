"""Issue 14, item 4, in a real lab: `netsleuth capture --lab ID --drops` during
low-MAC churn records the kernel's drops next to the capture, and `netsleuth
explain` names, for the queries that never left the bridge, the reason and
the function that dropped them (NO_TX_TARGET or OTHERHOST on the lab's
bridge or one of its ports, in the lab's host namespace)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import dns.message
import pytest

from netsleuth import netns
from netsleuth.cli import main
from netsleuth.lab import Churn, LabConfig, LabTopology, build_lab
from netsleuth.packets.drops import read_sidecar, sidecar_path

pytestmark = pytest.mark.lab

BRIDGE_REASONS = {"NO_TX_TARGET", "OTHERHOST"}
CHURN_S, TAIL_S = 9.0, 4.0


def query_loop(topo: LabTopology, seconds: float, rate: float = 20.0) -> int:
    """DNS queries from one socket of the container (so all share one
    5-tuple), on a fixed schedule; answers are drained."""
    sock = netns.run_in(
        netns.netns_path(topo.container_ns[0]),
        lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    )
    sock.setblocking(False)
    sent = 0
    start = time.monotonic()
    try:
        while (now := time.monotonic()) < start + seconds:
            sock.sendto(dns.message.make_query(topo.dns_name, "A").to_wire(), (topo.dns_server, 53))
            sent += 1
            for _ in range(64):
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
            time.sleep(max(0.0, start + sent / rate - now))
    finally:
        sock.close()
    return sent


def wait_for_first_line(path: Path, timeout: float = 90.0) -> None:
    """The recorder writes its first line once the tracer is attached (or it
    could not start); the capture's sockets open right after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} stayed empty for {timeout} s")


def test_capture_drops_names_why_queries_never_left_the_bridge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed (scripts/setup installs it)")
    out = tmp_path / "lab.pcapng"
    side = sidecar_path(out)
    with build_lab(LabConfig(containers=1, pin_mac=False)) as topo:
        errors: list[BaseException] = []
        churned: set[str] = set()

        def churn_and_ask() -> None:
            try:
                wait_for_first_line(side)
                time.sleep(0.5)  # the capture binds its sockets
                with Churn(topo, mac="low", t_in=2.0, t_out=1.0, duration=CHURN_S) as churn:
                    query_loop(topo, CHURN_S)
                assert churn.error is None
                churned.update(s.port for s in churn.steps)
                # keep asking while the container's stale neighbour entry recovers
                query_loop(topo, TAIL_S)
            except BaseException as exc:  # handed to the test thread below
                errors.append(exc)

        thread = threading.Thread(target=churn_and_ask)
        thread.start()
        try:
            argv = ["capture", "--lab", topo.run_id, "--drops", "-w", str(out)]
            code = main([*argv, "--duration", str(CHURN_S + TAIL_S + 1.5)])
        finally:
            thread.join(120)
        assert not errors, errors
        assert code == 0
        # the bridge, its ports, and the far ends of the churn's veths (a flooded
        # frame reaches them and is dropped there as for another host)
        ports = {topo.bridge, *topo.ports.values(), *churned, *(f"{p}p" for p in churned)}
        host_ns = topo.host_ns
    captured = capsys.readouterr()
    assert "recording kernel drops to" in captured.err
    assert "drops via bpftrace" in captured.err
    assert "kernel drops to" in captured.out

    log = read_sidecar(side)
    assert log.recorded and log.mechanisms == ("drops via bpftrace on skb:kfree_skb",)
    assert not log.warnings, log.warnings

    assert main(["explain", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    never = [q for q in doc["queries"] if q["verdict"] == "never-left-bridge"]
    assert len(never) >= 5, doc["verdicts"]
    explained = [
        q
        for q in never
        if q["drop"] is not None
        and q["drop"]["status"] == "dropped"
        and q["drop"]["drop"]["reason"] in BRIDGE_REASONS
        and q["drop"]["drop"]["device"] in ports
        and q["drop"]["drop"]["netns"] == host_ns
    ]
    share = len(explained) / len(never)
    print(f"never-left-bridge queries explained by a bridge drop: {len(explained)}/{len(never)}")
    assert share >= 0.8, (share, [(q["drop"] or {}).get("text") for q in never], doc["drops"])
    # same clock: the drop follows the packet's last sighting by far less than the window
    delays = sorted(q["drop"]["delay_ns"] for q in explained)
    assert delays[len(delays) // 2] < 5_000_000, delays
    assert delays[0] > -5_000_000, delays
    summary = doc["drops"]
    assert summary["recorded"] and summary["dropped"] >= len(explained)
    assert set(summary["reasons"]) & BRIDGE_REASONS

    assert main(["explain", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lost queries were dropped by the kernel:" in text
    reason = explained[0]["drop"]["drop"]["reason"]
    assert f"{reason} by {explained[0]['drop']['drop']['location']}" in text
