"""Events: what happened on the network beside the probes.

- :mod:`.state`      pure: netlink messages -> :class:`~netsleuth.model.NetEvent`
- :mod:`.netlink`    one thread per namespace reading a netlink socket born there
- :mod:`.invariant`  pure: the live stale-gateway check per target
- :mod:`.nftables`   ``nft monitor`` of a namespace -> firewall events

The watch engine owns every source, feeds their events to the store, and
re-checks the invariant after each batch.
"""

from netsleuth.events.invariant import GatewayCheck, GatewayInvariant
from netsleuth.events.netlink import NetlinkMonitor, wall_mono
from netsleuth.events.nftables import NftMonitor
from netsleuth.events.state import NamespaceState

__all__ = [
    "GatewayCheck",
    "GatewayInvariant",
    "NamespaceState",
    "NetlinkMonitor",
    "NftMonitor",
    "wall_mono",
]
