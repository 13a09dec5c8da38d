"""Links, addresses and routes through netlink (pyroute2), in the calling
thread's network namespace.

:class:`Links` holds one rtnetlink socket. pyroute2 opens its socket in the
thread that first uses it, so create and use a ``Links`` in one thread: the
one :meth:`netsleuth.netns.Namespace.run` runs a function in, for another
namespace::

    def up(name: str) -> None:
        with Links() as links:
            links.set(links.index(name), up=True)

    Namespace.named("ci").run(lambda: up("br0"))

The kernel's refusals come out as :class:`OSError` (``errno`` set); a missing
interface is :class:`~netsleuth.errors.TargetNotFound`. Links read here are
:class:`~netsleuth.netns.rtnl.RawLink`, the type of the fast raw dump.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netsleuth.errors import TargetNotFound
from netsleuth.lifecycle import Closing
from netsleuth.netns.rtnl import RawLink

__all__ = ["IfAddress", "Links", "RouteEntry"]

RT_TABLE_MAIN = 254
RTN_UNICAST = 1


@dataclass(frozen=True, slots=True)
class IfAddress:
    index: int
    address: str
    prefixlen: int


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One route. ``dst`` is empty for a default route; ``oif`` is 0 when
    the route names none (the first hop's, for a multipath route)."""

    family: int
    dst: str
    dst_len: int
    oif: int
    gateway: str = ""
    proto: int = 0
    type: int = RTN_UNICAST


@contextlib.contextmanager
def _kernel() -> Iterator[None]:
    """pyroute2's NetlinkError as the OSError it stands for."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        yield
    except NetlinkError as exc:
        raise OSError(exc.code, os.strerror(exc.code)) from None


def _raw_link(msg: Any) -> RawLink:
    return RawLink(
        index=int(msg["index"]),
        name=str(msg.get("ifname") or ""),
        mac=str(msg.get("address") or "").lower(),
        mtu=int(msg.get("mtu") or 0),
        kind=str(msg.get(("linkinfo", "kind")) or ""),
        master=int(msg.get("master") or 0),
        operstate=str(msg.get("operstate") or "UNKNOWN"),
        netnsid=msg.get("link_netnsid"),
        link=int(msg.get("link") or 0),
    )


class Links(Closing):
    """Netlink on the calling thread's namespace (see the module docstring)."""

    def __init__(self) -> None:
        from pyroute2 import IPRoute

        self._ipr = IPRoute()

    def close(self) -> None:
        self._ipr.close()

    # -- reading ------------------------------------------------------------

    def find(self, name: str) -> int | None:
        """The index of interface ``name``, or None."""
        with _kernel():
            found = self._ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    def index(self, name: str) -> int:
        """The index of interface ``name``; TargetNotFound if there is none."""
        index = self.find(name)
        if index is None:
            raise TargetNotFound(f"no interface {name} here; check the name with `ip link`")
        return index

    def link(self, index: int) -> RawLink:
        with _kernel():
            return _raw_link(self._ipr.get_links(index)[0])

    def links(self) -> list[RawLink]:
        with _kernel():
            return [_raw_link(msg) for msg in self._ipr.get_links()]

    def ports(self, bridge: int) -> dict[str, str]:
        """Name → MAC of every port of the bridge with index ``bridge``."""
        return {link.name: link.mac for link in self.links() if link.master == bridge}

    def addresses(self) -> list[IfAddress]:
        """Every address (IPv4 and IPv6)."""
        with _kernel():
            raw = self._ipr.get_addr()
        return [
            IfAddress(int(a["index"]), str(a.get("address")), int(a["prefixlen"]))
            for a in raw
            if a.get("address")
        ]

    def routes(self, table: int = RT_TABLE_MAIN) -> list[RouteEntry]:
        """Every route of ``table`` (IPv4 and IPv6)."""
        with _kernel():
            raw = self._ipr.get_routes(table=table)
        out = []
        for r in raw:
            oif = r.get("oif")
            if oif is None and r.get("multipath"):
                oif = r.get("multipath")[0]["oif"]
            out.append(
                RouteEntry(
                    family=int(r["family"]),
                    dst=str(r.get("dst") or ""),
                    dst_len=int(r["dst_len"]),
                    oif=int(oif or 0),
                    gateway=str(r.get("gateway") or ""),
                    proto=int(r.get("proto") or 0),
                    type=int(r["type"]),
                )
            )
        return out

    def default_oif(self, family: int = socket.AF_INET) -> int:
        """The interface the main table's default route leaves by (0: none)."""
        with _kernel():
            routes = self._ipr.get_default_routes(family=family, table=RT_TABLE_MAIN)
        return next((int(r.get("oif")) for r in routes if r.get("oif")), 0)

    def route_oif(self, dst: str) -> int:
        """The interface a packet to ``dst`` leaves by (0: unreachable)."""
        try:
            with _kernel():
                return int(self._ipr.route("get", dst=dst)[0].get("oif") or 0)
        except OSError:
            return 0

    # -- changing -----------------------------------------------------------

    def add_bridge(self, name: str, *, mac: str | None = None) -> int:
        args: dict[str, object] = {"ifname": name, "kind": "bridge"}
        if mac is not None:
            args["address"] = mac
        with _kernel():
            self._ipr.link("add", **args)
        return self.index(name)

    def add_veth(
        self,
        name: str,
        peer: str,
        *,
        peer_netns: str | Path | None = None,
        mac: str | None = None,
    ) -> int:
        """A veth pair ``name`` (MAC ``mac``, if given) / ``peer``; the peer
        goes to the namespace at ``peer_netns`` if given. Returns ``name``'s index."""
        peer_args: dict[str, object] = {"ifname": peer}
        if peer_netns is not None:
            peer_args["net_ns_fd"] = str(peer_netns)
        args: dict[str, object] = {"ifname": name, "kind": "veth", "peer": peer_args}
        if mac is not None:
            args["address"] = mac
        with _kernel():
            self._ipr.link("add", **args)
        return self.index(name)

    def set(
        self,
        index: int,
        *,
        mac: str | None = None,
        mtu: int | None = None,
        master: int | None = None,
        up: bool | None = None,
    ) -> None:
        args: dict[str, object] = {}
        if mac is not None:
            args["address"] = mac
        if mtu is not None:
            args["mtu"] = mtu
        if master is not None:
            args["master"] = master
        if up is not None:
            args["state"] = "up" if up else "down"
        with _kernel():
            self._ipr.link("set", index=index, **args)

    def delete(self, index: int) -> None:
        with _kernel():
            self._ipr.link("del", index=index)

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        with _kernel():
            self._ipr.addr("add", index=index, address=address, prefixlen=prefixlen)

    def add_default_route(self, gateway: str) -> None:
        with _kernel():
            self._ipr.route("add", dst="default", gateway=gateway)
