"""Conntrack entries without NAT left behind by a bridge outage
(``stale-conntrack-nat``).

A few short flaps of the lab bridge's MAC, as ``bridge-mac-flap`` makes
them: a port with a MAC below every other joins the unpinned bridge (the
bridge takes its MAC, the host's next ARP request tells the container), and
leaves ``on`` seconds later, taking the MAC the container now sends to.
Until the container's gateway entry fails and is resolved again (~6 s) the
bridge floods its queries, and with br_netfilter on (bridge-nf-call-iptables,
set here in the lab's host namespace only) each flooded query passes
netfilter as bridged traffic: its conntrack entry is made without NAT and
stays, unanswered, for nf_conntrack_udp_timeout (30 s). A flooded frame
gets an entry only when the bridge sends it out of some port, so a
bystander namespace sits on the bridge (as other containers would), with a
port MAC above every other, so the bridge never takes it.

After the outage, a query whose source port one of those entries holds
matches it, is routed out untranslated and its answer never comes back. A
probe uses a fresh random source port per query: out of the kernel's 28,232
ports a few hundred stale entries hit one query in a hundred or so. The
containers' ``ip_local_port_range`` is narrowed to :data:`PORTS` ports (a
per-namespace setting) so that the same mechanism shows within seconds
instead of hours: single lost queries, scattered over the half minute after
each outage.
"""

from __future__ import annotations

import time

from netsleuth import netns
from netsleuth.lab.churn import low_mac
from netsleuth.lab.faults.periodic import PeriodicFault
from netsleuth.lab.topology import LAB_PREFIX, LabTopology, add_bridge_peer, high_mac
from netsleuth.netns import Links, Namespace
from netsleuth.netns.unnated import UnnatedReader

__all__ = ["BR_NETFILTER", "PORTS", "StaleConntrackNat", "bystander_name"]

BR_NETFILTER = "net/bridge/bridge-nf-call-iptables"
PORTS = (40000, 40511)
"""The containers' source port range (512 ports)."""

FLAP_PORT = "vstale"


def bystander_name(topo: LabTopology) -> str:
    return f"{LAB_PREFIX}{topo.run_id}-peer"


class StaleConntrackNat(PeriodicFault):
    """The bystander and the settings (on enter), then ``on`` s of a low-MAC
    port on the bridge every ``period`` s; the bystander goes on exit."""

    name = "lab-stale-conntrack"

    def __init__(
        self,
        topo: LabTopology,
        duration: float,
        seed: int,
        *,
        period: float = 12.0,
        on: float = 2.0,
        first: float = 3.0,
    ) -> None:
        self.topo = topo
        self.ns = bystander_name(topo)
        self.port_mac = high_mac(seed, "bystander-port")
        super().__init__(duration, period=period, on=on, first=first)

    def start(self) -> None:
        try:
            self._build()
        except BaseException:
            netns.remove_owned(self.ns)
            raise
        super().start()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            netns.remove_owned(self.ns)  # its veth (the bridge port) goes with it

    def _build(self) -> None:
        Namespace.named(self.topo.host_ns).set_sysctl(BR_NETFILTER, 1)
        for name in self.topo.container_ns:
            Namespace.named(name).set_sysctl(
                "net/ipv4/ip_local_port_range", f"{PORTS[0]}\t{PORTS[1]}"
            )
        add_bridge_peer(self.topo, self.ns, "vpeer", self.port_mac, up=True)

    def _run(self) -> None:
        """Wait (a third of the run at most) until the containers' queries are
        NATed, i.e. the probes are running, then flap on the schedule."""
        waited = self._wait_for_traffic(self.duration / 3)
        if waited is None:
            return
        self.duration -= waited
        super()._run()

    def _wait_for_traffic(self, limit: float) -> float | None:
        """Seconds until the host namespace NATs new queries (None: told to stop)."""
        start = time.monotonic()
        try:
            reader = Namespace.named(self.topo.host_ns).run(UnnatedReader)
        except OSError:
            return 0.0
        try:
            before = reader.translated()  # the lab's health check left one or two
            while time.monotonic() - start < limit:
                if reader.translated() >= before + 3:
                    break
                if self._stop.wait(0.2):
                    return None
        except OSError:
            pass
        finally:
            reader.close()
        return time.monotonic() - start

    def _on(self) -> None:
        mac = low_mac(self.stretches + 1)

        def join() -> None:
            with Links() as links:
                idx = links.add_veth(FLAP_PORT, f"{FLAP_PORT}p", mac=mac)
                links.set(links.index(f"{FLAP_PORT}p"), up=True)
                links.set(idx, master=links.index(self.topo.bridge), up=True)

        Namespace.named(self.topo.host_ns).run(join)

    def _off(self) -> None:
        def leave() -> None:
            with Links() as links:
                idx = links.find(FLAP_PORT)
                if idx is not None:
                    links.delete(idx)

        Namespace.named(self.topo.host_ns).run(leave)
