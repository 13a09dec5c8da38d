"""The watch engine against real namespaces: the lab topology, real dnsmasq,
real netlink. Each probe kind, each event kind and the invariant are seen."""

from __future__ import annotations

import itertools
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.lab import Churn, LabConfig, LabTopology, build_lab, nft_apply
from netsleuth.model import EventKind, InvariantDetail, MacChange, NeighChange, Outcome
from netsleuth.store import Store
from netsleuth.watch import WatchConfig, WatchEngine

pytestmark = pytest.mark.netns


@pytest.fixture
def topo() -> Iterator[LabTopology]:
    with build_lab(LabConfig(containers=1)) as t:
        yield t


def test_every_probe_kind_from_a_container(topo: LabTopology, tmp_path: Path) -> None:
    server = topo.dns_server
    probes = (
        f"dns:{server}/{topo.dns_name}/A",
        f"dns:{server}/www.nx.test/A",
        "dns:ns.lab.test",  # to every server of the container's own resolv.conf
        f"resolve:{topo.dns_name}",
        f"tcp:{server}:53",
        f"tcp:{server}:9",
        f"icmp:{topo.gateway}",
        "icmp:198.19.99.99",  # no route upstream for it: times out
    )
    container = f"netns:{topo.container_ns[0]}"
    engine = WatchEngine(
        WatchConfig(
            targets=(container, "host"),
            probes=probes,
            rate=10,
            timeout=0.5,
            count=4,
            host_netns=topo.host_ns,
        ),
        tmp_path / "s.sqlite",
    )
    summary = engine.run()
    with Store(tmp_path / "s.sqlite") as store:
        rows = store.probes(runs=[summary.run_id])
    seen: dict[tuple[str, str], Counter[Outcome]] = {}
    answers: dict[str, set[str]] = {}
    for r in rows:
        seen.setdefault((r.target, r.probe), Counter())[r.outcome] += 1
        if r.target == container:
            answers.setdefault(r.probe, set()).add(r.answer)
    mine = {probe: c for (target, probe), c in seen.items() if target == container}
    assert mine[f"dns:{server}/{topo.dns_name}/A"] == Counter({Outcome.OK: 4})
    assert answers[f"dns:{server}/{topo.dns_name}/A"] == {topo.dns_answer}
    assert mine[f"dns:{server}/www.nx.test/A"] == Counter({Outcome.NXDOMAIN: 4})
    assert mine[f"dns:{server}/ns.lab.test/A"] == Counter({Outcome.OK: 4})  # from resolv.conf
    assert mine[f"resolve:{topo.dns_name}"] == Counter({Outcome.OK: 4})
    assert answers[f"resolve:{topo.dns_name}"] == {topo.dns_answer}
    assert mine[f"tcp:{server}:53"] == Counter({Outcome.OK: 4})
    assert mine[f"tcp:{server}:9"] == Counter({Outcome.REFUSED: 4})
    assert mine[f"icmp:{topo.gateway}"] == Counter({Outcome.OK: 4})
    assert mine["icmp:198.19.99.99"] == Counter({Outcome.TIMEOUT: 4})
    # The lab's host namespace has no resolv.conf of its own pointing at the lab
    # server, but its explicit probes work the same way.
    assert seen[("host", f"dns:{server}/{topo.dns_name}/A")] == Counter({Outcome.OK: 4})
    latencies = [r.latency_ns for r in rows if r.outcome == Outcome.OK and r.target == container]
    assert all(lat is not None and 0 < lat < 500_000_000 for lat in latencies)


def _bridge_macs_from_ip_monitor(log: str, bridge: str) -> list[str]:
    macs = []
    for line in log.splitlines():
        m = re.match(rf"^(?:Deleted )?\d+: {bridge}: .*link/ether (\S+)", line)
        if m and (not macs or macs[-1] != m.group(1)):
            macs.append(m.group(1))
    return macs


def test_events_invariant_and_mac_changes_match_ip_monitor(
    topo: LabTopology, tmp_path: Path
) -> None:
    store_path = tmp_path / "s.sqlite"
    container = topo.container_ns[0]
    engine = WatchEngine(
        WatchConfig(
            targets=(f"netns:{container}",),
            probes=(f"dns:{topo.dns_server}/{topo.dns_name}/A",),
            rate=20,
            timeout=1,
            duration=13,
            host_netns=topo.host_ns,
        ),
        store_path,
    )
    monitor = subprocess.Popen(
        ["ip", "-n", topo.host_ns, "-o", "monitor", "link"], stdout=subprocess.PIPE, text=True
    )
    initial_mac = _link(topo.host_ns, topo.bridge)["address"]

    def disturb() -> None:
        time.sleep(0.7)
        with Churn(topo, mac="low", t_in=2.0, t_out=1.0, duration=9.0):
            time.sleep(1.0)
            with IPRoute(netns=topo.host_ns) as ipr:  # an MTU change on the uplink
                ipr.link("set", index=ipr.link_lookup(ifname=topo.uplink)[0], mtu=1400)
            with IPRoute(netns=container) as ipr:  # a route coming and going
                ipr.route("add", dst="198.19.7.0/24", gateway=topo.gateway)
                ipr.route("del", dst="198.19.7.0/24", gateway=topo.gateway)
            nft_apply(
                topo.host_ns,
                '{"nftables": [{"add": {"table": {"family": "inet", "name": "nsltest"}}}]}',
            )
            time.sleep(8.0)

    thread = threading.Thread(target=disturb)
    thread.start()
    summary = engine.run()
    thread.join()
    time.sleep(0.2)
    monitor.terminate()
    log, _ = monitor.communicate()
    with Store(store_path) as store:
        events = store.events(runs=[summary.run_id])
    kinds = Counter(str(e.kind) for e in events)
    for kind in (
        "link-added",
        "link-removed",
        "port-joined",
        "port-left",
        "mac-changed",
        "oper-changed",
        "mtu-changed",
        "fdb-added",
        "fdb-removed",
        "neigh-changed",
        "route-added",
        "route-removed",
        "firewall-changed",
        "invariant-violated",
        "invariant-recovered",
    ):
        assert kinds[kind] > 0, f"no {kind} event recorded: {kinds}"

    mac_events = [e for e in events if e.kind == EventKind.MAC_CHANGED and e.ifname == topo.bridge]
    assert all(isinstance(e.detail, MacChange) for e in mac_events)
    stored = [initial_mac] + [e.detail.new for e in mac_events]
    for before, after in itertools.pairwise(mac_events):
        assert after.detail.old == before.detail.new
    assert all(e.detail.addr_assign_type == 1 for e in mac_events)
    assert all(e.detail.old != e.detail.new for e in mac_events)
    independent = _bridge_macs_from_ip_monitor(log, topo.bridge)
    assert len(mac_events) >= 4
    assert independent == stored[len(stored) - len(independent) :]
    assert abs(len(independent) - len(stored)) <= 1  # ip monitor may start after the first

    # A mismatch right after a join is harmless (a port still owns the old MAC);
    # after a leave the container's gateway MAC belongs to no port: the outage.
    violated = [e for e in events if e.kind == EventKind.INVARIANT_VIOLATED]
    assert all(isinstance(e.detail, InvariantDetail) for e in violated)
    dead = [e for e in violated if not e.detail.owned_by_port]
    assert dead and all(e.detail.neigh_mac.startswith("02:00:00:00:") for e in dead)
    left = [e.wall_ns for e in events if e.kind == EventKind.PORT_LEFT]
    assert all(min(abs(e.wall_ns - t) for t in left) < 50_000_000 for e in dead)
    neigh = [e.detail for e in events if e.kind == EventKind.NEIGH_CHANGED]
    assert all(isinstance(d, NeighChange) for d in neigh)
    neigh_states = {d.state for d in neigh}
    assert {"STALE", "FAILED"} <= neigh_states or {"PROBE", "FAILED"} <= neigh_states
    fw = [e for e in events if e.kind == EventKind.FIREWALL_CHANGED]
    assert any("nsltest" in e.subject for e in fw)
    assert summary.failed > 0


def _link(ns: str, name: str) -> dict[str, str]:
    with IPRoute(netns=ns) as ipr:
        msg = ipr.get_links(ipr.link_lookup(ifname=name)[0])[0]
        return {"address": msg.get("address")}


def test_target_that_disappears_and_comes_back(tmp_path: Path) -> None:
    name = f"nslt-restart-{int(time.time() * 1000) % 100000}"

    def make() -> None:
        netns.create_owned(name)
        with IPRoute(netns=name) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

    make()
    try:
        engine = WatchEngine(
            WatchConfig(
                targets=(f"netns:{name}",),
                probes=("icmp:127.0.0.1",),
                rate=20,
                timeout=0.5,
                duration=5,
            ),
            tmp_path / "s.sqlite",
        )

        def restart() -> None:
            time.sleep(1.5)
            netns.remove_owned(name)
            time.sleep(1.0)
            make()

        thread = threading.Thread(target=restart)
        thread.start()
        summary = engine.run()
        thread.join()
    finally:
        netns.remove_owned(name)
    with Store(tmp_path / "s.sqlite") as store:
        rows = store.probes(runs=[summary.run_id])
        events = store.events(runs=[summary.run_id])
    kinds = [e.kind for e in events]
    assert EventKind.TARGET_GONE in kinds and EventKind.TARGET_BACK in kinds
    gone_at = next(e.wall_ns for e in events if e.kind == EventKind.TARGET_GONE)
    back_at = next(e.wall_ns for e in events if e.kind == EventKind.TARGET_BACK)
    outcomes = [r.outcome for r in rows]
    assert outcomes.count(Outcome.TARGET_GONE) >= 10  # ~20/s for about a second
    assert all(
        gone_at - 100_000_000 <= r.wall_ns <= back_at + 100_000_000
        for r in rows
        if r.outcome == Outcome.TARGET_GONE
    )
    assert sum(1 for r in rows if r.outcome == Outcome.OK and r.wall_ns > back_at) >= 20
