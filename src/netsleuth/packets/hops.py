"""The hops a target's DNS queries cross, found from the kernel's topology.

From inside the target's namespace: the veth its default route leaves by
(the only veth, if there is no default route), and the id that namespace
gives the veth's peer namespace. That id names one of the candidate
namespaces (this process's own and every named one under /run/netns): the
one the target's namespace gives the same id. There: the peer (role
``client``), the bridge it is a port of (``bridge``) and the interface that
namespace reaches the target's DNS server by, or else its default route
leaves by (``uplink``). Nothing is changed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from netsleuth.errors import TargetNotFound
from netsleuth.netns import (
    Links,
    Namespace,
    RawLink,
    dump_links,
    list_named,
    netns_id,
    netns_path,
)
from netsleuth.packets.capture import CaptureSpec

__all__ = ["target_specs"]

OWN_NETNS = "/proc/self/ns/net"


@dataclass(frozen=True, slots=True)
class _View:
    """One namespace's links and the index its traffic leaves by (0: none)."""

    links: dict[int, RawLink]
    out_oif: int


def _view(server: str | None = None) -> _View:
    """The calling thread's namespace: links, and the interface a packet to
    ``server`` leaves by (the default route's when no server is given)."""
    with Links() as links:
        oif = links.route_oif(server) if server else links.default_oif()
    return _View({link.index: link for link in dump_links()}, oif)


def target_specs(path: str, label: str = "", server: str | None = None) -> list[CaptureSpec]:
    """Capture specs for the hops of the target whose network namespace is at
    ``path``: its veth's peer, that peer's bridge, and the peer namespace's
    uplink toward ``server`` (the target's DNS server; default route if None),
    in that order (bridge or uplink left out when there is none)."""
    ns = Namespace.at(path, label or path)
    label = ns.label
    # /proc/self is the main thread, which never leaves this process's namespace
    candidates = {"": OWN_NETNS} | {name: str(netns_path(name)) for name in list_named()}

    def inside() -> tuple[_View, dict[str, int | None]]:
        return _view(), {name: netns_id(p) for name, p in candidates.items()}

    target, ids = ns.run(inside)
    veths = [link for link in target.links.values() if link.kind == "veth"]
    veth = target.links.get(target.out_oif)
    if veth is None or veth.kind != "veth":
        if len(veths) != 1:
            raise TargetNotFound(
                f"{label} has {len(veths)} veth interfaces and no default route through one; "
                "name the hops with --iface NETNS:IFNAME:ROLE"
            )
        veth = veths[0]
    if veth.netnsid is None:
        raise TargetNotFound(
            f"{label}: the peer of {veth.name} is in the same namespace; "
            "name the hops with --iface NETNS:IFNAME:ROLE"
        )
    names = sorted(name for name, nsid in ids.items() if nsid == veth.netnsid)
    if not names:
        raise TargetNotFound(
            f"{label}: the peer of {veth.name} lives in a namespace without a name; "
            "name it with `ip netns attach NAME PID`, or give the hops with --iface"
        )
    peer_ns = names[0]
    peer_view = Namespace.of(peer_ns or None).run(lambda: _view(server))
    peer = peer_view.links.get(veth.link)
    if peer is None or peer.kind != "veth":
        raise TargetNotFound(
            f"{label}: the peer of {veth.name} (index {veth.link}) is not in "
            f"{peer_ns or 'this namespace'} any more; try again"
        )
    specs = [CaptureSpec(peer_ns, peer.name, "client")]
    bridge = peer_view.links.get(peer.master)
    if bridge is not None and bridge.kind == "bridge":
        specs.append(CaptureSpec(peer_ns, bridge.name, "bridge"))
    uplink = peer_view.links.get(peer_view.out_oif)
    if uplink is not None and uplink.index not in (peer.index, peer.master) and uplink.name != "lo":
        specs.append(CaptureSpec(peer_ns, uplink.name, "uplink"))
    return specs
