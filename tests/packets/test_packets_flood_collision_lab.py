"""Must show: while the bridge floods the queries of several containers at
once (a flapping bridge MAC), a query of one container seen leaving another
container's port (the bridge flooded it there) is not mistaken for one that
left through the uplink. Stub resolvers that number their queries from the
same start (sequential ids, the same name) make the queries of two
containers share id and name; the matcher then sees the other container's
query, from another address, on that port — which once made the port count
as an uplink "where translated queries were seen", and every later flooded
query seen there escaped-nat."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import dns.message
import pytest

from netsleuth import netns
from netsleuth.lab import Churn, LabConfig, LabTopology, build_lab
from netsleuth.packets.capture import CaptureResult, capture, lab_specs
from netsleuth.packets.explain import explain
from netsleuth.packets.model import Fate

pytestmark = [pytest.mark.lab, pytest.mark.timeout(180)]


def sequential_queries(topo: LabTopology, ns: str, seconds: float, rate: float = 25.0) -> int:
    """Queries with ids 0, 1, 2, ... from one socket, answers drained."""
    sock = netns.run_in(
        netns.netns_path(ns), lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    sock.setblocking(False)
    sent = 0
    start = time.monotonic()
    try:
        while (now := time.monotonic()) < start + seconds:
            q = dns.message.make_query(topo.dns_name, "A")
            q.id = sent & 0xFFFF
            sock.sendto(q.to_wire(), (topo.dns_server, 53))
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


def test_flooded_queries_of_two_containers_are_not_escaped_nat(tmp_path: Path) -> None:
    out = tmp_path / "lab.pcapng"
    with build_lab(LabConfig(containers=2)) as topo:
        ports = [topo.ports[ns] for ns in topo.container_ns]
        specs = lab_specs(topo.host_ns, ports, topo.bridge, topo.uplink)
        stop, ready = threading.Event(), threading.Event()
        box: dict[str, CaptureResult] = {}
        thread = threading.Thread(
            target=lambda: box.update(r=capture(specs, out, stop=stop, ready=ready, duration=60))
        )
        thread.start()
        try:
            assert ready.wait(10)

            def both(seconds: float) -> None:
                loops = [
                    threading.Thread(target=sequential_queries, args=(topo, ns, seconds))
                    for ns in topo.container_ns
                ]
                for t in loops:
                    t.start()
                for t in loops:
                    t.join(seconds + 10)

            with Churn(topo, mac="low", t_in=2.0, t_out=1.0, duration=6.0) as churn:
                both(6.0)
            assert churn.error is None
            both(3.0)
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join(30)
    e = explain([out], keep="failed")
    print(e.counts)
    assert e.counts["never-left-bridge"] > 0, e.counts  # the bridge did flood
    uplink = topo.uplink
    for j in e.journeys:
        # a query translated or escaped must have been seen leaving the uplink
        if j.verdict in (Fate.ESCAPED_NAT, Fate.NAT_UNANSWERED):
            assert any(h.iface == uplink and not h.response for h in j.hops), j
        # no container port carries a translated copy of another's query
        assert not any(h.nat and h.iface in ports for h in j.hops), j
