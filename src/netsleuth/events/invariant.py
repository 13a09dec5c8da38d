"""The stale-gateway invariant, checked live.

For each target: *the target's neighbour entry for its default gateway holds
the gateway's current MAC*. The gateway is the interface in the host
namespace that owns the gateway address (a bridge, in the failing setups).
When the entry holds another MAC the invariant is violated; the detail says
whether that MAC still belongs to one of the bridge's ports (the frames still
arrive) or to no port at all (the frames are flooded to nobody: the outage of
the bridge-MAC bug). Pure: it reads two :class:`NamespaceState`\\ s.
"""

from __future__ import annotations

from dataclasses import dataclass

from netsleuth.events.state import NamespaceState
from netsleuth.model import EventKind, InvariantDetail, NetEvent

__all__ = ["GatewayCheck", "GatewayInvariant"]

_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x80  # REACHABLE STALE DELAY PROBE PERMANENT


@dataclass(frozen=True, slots=True)
class GatewayCheck:
    violated: bool
    gateway: str
    gateway_mac: str
    neigh_mac: str
    bridge: str
    owned_by_port: bool


class GatewayInvariant:
    def __init__(self, target: str, host: NamespaceState, inside: NamespaceState) -> None:
        self.target = target
        self.host = host
        self.inside = inside
        self.violated = False

    def evaluate(self) -> GatewayCheck | None:
        """The current verdict, or None when there is nothing to compare yet."""
        gw = self.inside.gateway
        if not gw or gw not in self.host.addrs:
            return None
        entry = self.inside.neigh.get(gw)
        if entry is None or not entry[0] or not entry[1] & _USABLE:
            return None
        gw_link = self.host.links.get(self.host.addrs[gw])
        if gw_link is None:
            return None
        neigh_mac = entry[0]
        owned = neigh_mac in self.host.bridge_macs(gw_link.index)
        return GatewayCheck(
            neigh_mac != gw_link.mac, gw, gw_link.mac, neigh_mac, gw_link.name, owned
        )

    def check(self) -> NetEvent | None:
        """An event when the verdict flips, else None."""
        verdict = self.evaluate()
        # No verdict (entry incomplete, gateway unknown) keeps the last state open.
        if verdict is None or verdict.violated == self.violated:
            return None
        self.violated = violated = verdict.violated
        wall, mono = self.inside.clock()
        kind = EventKind.INVARIANT_VIOLATED if violated else EventKind.INVARIANT_RECOVERED
        return NetEvent(
            wall,
            mono,
            self.target,
            kind,
            verdict.bridge,
            verdict.gateway,
            InvariantDetail(
                verdict.gateway_mac, verdict.neigh_mac, verdict.bridge, verdict.owned_by_port
            ),
        )
