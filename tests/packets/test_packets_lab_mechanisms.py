"""Two mechanisms behind lost queries, measured in the lab.

1. The stale gateway's tail: queries the bridge flooded leave conntrack
   entries without NAT; a later query from the same port leaves the uplink
   untranslated and is lost. `explain` names it from a capture, and `fix
   bridge` deletes the entries, after which those ports work again.
2. The other half of the flap: while a port with a smaller MAC is attached,
   frames to the bridge's previous MAC (another container's port MAC) reach
   the host "for another host" and are dropped — except from the container
   whose port owns that MAC. The journey matcher's stale-gateway rule relies
   on this kernel behaviour."""

from __future__ import annotations

import json
import random
import select
import socket
import threading
import time
from pathlib import Path

import dns.message
import pytest
from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.cli import main
from netsleuth.lab import Churn, LabConfig, LabTopology, build_lab
from netsleuth.packets.capture import CaptureResult, capture, lab_specs
from netsleuth.packets.explain import explain
from netsleuth.packets.model import Fate

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]


def ask_all(topo: LabTopology, ports: list[int], timeout: float, container: str = "") -> set[int]:
    """One query from the (first) container from each of ``ports``, all at
    once; the ports that got an answer within ``timeout``."""
    path = netns.netns_path(container or topo.container_ns[0])
    socks = {}
    try:
        for sport in ports:
            sock = netns.run_in(path, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            socks[sport] = sock
            sock.bind(("0.0.0.0", sport))
            sock.setblocking(False)
            query = dns.message.make_query(topo.dns_name, "A").to_wire()
            sock.sendto(query, (topo.dns_server, 53))
        answered: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(answered) < len(socks) and (left := deadline - time.monotonic()) > 0:
            ready, _w, _x = select.select(list(socks.values()), [], [], left)
            for sock in ready:
                sock.recv(2048)
                answered.add(sock.getsockname()[1])
        return answered
    finally:
        for sock in socks.values():
            sock.close()


def test_flooded_queries_poison_conntrack_and_fix_clears_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(7)
    out = tmp_path / "ct.pcapng"
    with build_lab(LabConfig(containers=1, pin_mac=False)) as topo:
        port = topo.ports[topo.container_ns[0]]
        specs = lab_specs(topo.host_ns, [port], topo.bridge, topo.uplink)
        stop, ready = threading.Event(), threading.Event()
        box: dict[str, CaptureResult] = {}
        thread = threading.Thread(
            target=lambda: box.update(r=capture(specs, out, stop=stop, ready=ready, duration=90))
        )
        thread.start()
        try:
            assert ready.wait(10)
            # 20 queries/s, each from a port of its own (as resolvers do: a fresh
            # one per query, here never the same twice), through three churn
            # cycles and the outage after them; remember the ports that got no answer
            ports = iter(rng.sample(range(20000, 30000), 400))
            lost: list[int] = []
            with Churn(topo, mac="low", t_in=2.0, t_out=1.0, duration=9.0):
                started = time.monotonic()
                for n in range(250):
                    sport = next(ports)
                    if sport not in ask_all(topo, [sport], 0.04):
                        lost.append(sport)
                    time.sleep(max(0.0, started + (n + 1) / 20 - time.monotonic()))
            assert len(lost) >= 20, "the churn made no outage"
            for _ in range(100):  # the outage is over when fresh ports are answered
                if ask_all(topo, [rng.randrange(40000, 50000)], 0.2):
                    break
            else:
                pytest.fail("the lab did not recover")
            # the same ports again: those whose flooded query left an entry without NAT fail
            poisoned = set(lost) - ask_all(topo, lost, 1.0)
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join(30)
        assert len(poisoned) >= 3, (len(lost), poisoned)

        e = explain([out], keep="failed")
        escaped = {
            int(j.client.rsplit(":", 1)[1]): j for j in e.journeys if j.verdict is Fate.ESCAPED_NAT
        }
        # every escaped query is a poisoned port; a retry can also be lost for another
        # reason on a busy machine (seen once in six runs), so allow one in ten
        assert set(escaped) <= poisoned, e.counts
        other = {
            j.client: str(j.verdict)
            for j in e.journeys
            if int(j.client.rsplit(":", 1)[1]) in poisoned - set(escaped)
        }
        assert len(poisoned - set(escaped)) <= max(1, len(poisoned) // 10), (e.counts, other)
        # nearly all carry the evidence: an earlier query from the same port that
        # never left the bridge (a port drawn twice may show another history)
        explained = [j for j in escaped.values() if j.reused_entry_age_ns is not None]
        assert len(explained) >= 0.8 * len(escaped), (len(explained), len(escaped))
        assert "stale-conntrack-entry" in [f.rule for f in e.findings]

        argv = ["fix", "bridge", topo.bridge, "--netns", topo.host_ns, "--mac", "current"]
        assert main([*argv, "--persist", "none", "--apply", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert len(doc["conntrack_leftovers"]) >= len(poisoned), doc
        assert any("conntrack entries made without NAT deleted" in c for c in doc["changed"])
        # their entries are gone: the same ports are answered at once
        assert ask_all(topo, sorted(poisoned), 1.0) == poisoned


def test_join_cuts_off_all_but_the_owner_of_the_previous_mac(tmp_path: Path) -> None:
    rng = random.Random(3)
    with build_lab(LabConfig(containers=3, pin_mac=False)) as topo:
        with IPRoute(netns=topo.host_ns) as ipr:
            macs = {link.get("ifname"): link.get("address") for link in ipr.get_links()}
        owner = next(ns for ns, port in topo.ports.items() if macs[port] == macs[topo.bridge])
        specs = lab_specs(topo.host_ns, list(topo.ports.values()), topo.bridge, topo.uplink)
        stop, ready = threading.Event(), threading.Event()
        box: dict[str, CaptureResult] = {}
        thread = threading.Thread(
            target=lambda: box.update(
                r=capture(specs, tmp_path / "j.pcapng", stop=stop, ready=ready, duration=60)
            )
        )
        thread.start()
        failed = dict.fromkeys(topo.container_ns, 0)
        try:
            assert ready.wait(10)
            with Churn(topo, mac="low", t_in=2.0, t_out=1.0, duration=2.5) as churn:
                started = time.monotonic()
                while time.monotonic() - started < 1.9:  # inside the one 2 s stay
                    for ns in topo.container_ns:
                        if not ask_all(topo, [rng.randrange(20000, 30000)], 0.03, ns):
                            failed[ns] += 1
                    time.sleep(0.02)
            assert churn.error is None
        finally:
            stop.set()
            thread.join(30)
    assert failed[owner] == 0, failed
    others = [n for ns, n in failed.items() if ns != owner]
    assert all(n >= 10 for n in others), failed
    bridge = next(c for c in box["r"].interfaces if c.spec.role == "bridge")
    assert bridge.not_for_host >= sum(others) - 2, (bridge, failed)
