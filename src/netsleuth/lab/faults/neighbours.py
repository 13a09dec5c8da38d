"""Someone else claiming the gateway's address (``gateway-arp-conflict``): a
rogue peer on the bridge — a container or VM configured with the gateway's
IP by mistake — announces it with gratuitous ARP now and then.

The rogue is a namespace of its own (``nsl-ID-rogue``), attached to the lab
bridge by a veth like any container. While it claims the address it sends a
gratuitous ARP request for the gateway every half second from a raw
``AF_PACKET`` socket: every neighbour on the bridge that holds an entry for
the gateway moves it to the rogue's MAC (a gratuitous ARP overrides the
entry at once). The rogue has no such address, so it answers nobody and
forwards nothing: the namespaces' traffic to the gateway is lost until
their entry fails its unicast probes and is resolved again, by the bridge
(up to ~8 s: 5 s delay, three probes), or until the host's own ARP probe
for the namespace moves the entry back sooner.

Its port's MAC is above any other's, so the bridge (unpinned or not) keeps
its MAC. The namespace is owned by this process, so ``lab clean`` removes it
after a crash.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct

from netsleuth import netns
from netsleuth.lab.faults.periodic import PeriodicFault
from netsleuth.lab.topology import (
    LAB_PREFIX,
    LabTopology,
    add_bridge_peer,
    high_mac,
    seeded_mac,
)
from netsleuth.netns import Links

__all__ = ["RogueGateway", "garp_frame", "rogue_name"]

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


def rogue_name(topo: LabTopology) -> str:
    return f"{LAB_PREFIX}{topo.run_id}-rogue"


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(b, 16) for b in mac.split(":"))


def garp_frame(mac: str, ip: str) -> bytes:
    """An Ethernet frame with a gratuitous ARP request: ``mac`` says it holds
    ``ip`` (sender and target address both ``ip``), to everyone."""
    hw, addr = _mac_bytes(mac), ipaddress.IPv4Address(ip).packed
    eth = BROADCAST + hw + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + addr + b"\x00" * 6 + addr
    return eth + arp


class RogueGateway(PeriodicFault):
    """The rogue namespace (built on enter, removed on exit) and its claims:
    ``on`` s of gratuitous ARP every ``period`` s."""

    name = "lab-rogue-gateway"

    def __init__(
        self,
        topo: LabTopology,
        duration: float,
        seed: int,
        *,
        period: float = 10.0,
        on: float = 2.0,
        every: float = 0.5,
    ) -> None:
        self.topo = topo
        self.ns = rogue_name(topo)
        self.mac = seeded_mac(seed, "rogue")
        self.port_mac = high_mac(seed, "rogue-port")
        self.frame = garp_frame(self.mac, topo.gateway)
        self._sock: socket.socket | None = None
        super().__init__(duration, period=period, on=on, repeat=every)

    def start(self) -> None:
        try:
            self._build()
        except BaseException:
            self._remove()
            raise
        super().start()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self._remove()

    def _build(self) -> None:
        rogue = add_bridge_peer(self.topo, self.ns, "vrogue", self.port_mac)

        def inside() -> socket.socket:
            with Links() as links:
                eth = links.index("eth0")
                links.set(eth, mac=self.mac, up=True)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # sends only
            sock.bind(("eth0", 0))
            return sock

        self._sock = rogue.run(inside)

    def _remove(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        netns.remove_owned(self.ns)  # its veth (and the bridge port) go with it

    def _claim(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # the link is being torn down
                self._sock.send(self.frame)

    def _on(self) -> None:
        self._claim()

    def _again(self) -> None:
        self._claim()

    def _off(self) -> None:
        return None  # it just goes quiet: the neighbours find the bridge again
