"""Netlink notifications of one namespace, as pyroute2 messages: the
subscription (a socket born inside the namespace and bound to the link,
neighbour, IPv4 route and address groups), the decoder for what it reads, and
the dump that seeds a listener's state. What the messages mean is the
events package's business (:mod:`netsleuth.events.netlink`)."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from netsleuth.netns.namespace import Namespace

__all__ = ["AF_BRIDGE", "AF_INET", "RT_TABLE_MAIN", "Decoder", "dump", "subscribe"]

AF_INET = 2
AF_BRIDGE = 7
RT_TABLE_MAIN = 254


def subscribe(path: str | Path | None, rcvbuf: int = 8 << 20) -> socket.socket:
    """A non-bound-to-a-thread socket for the link, neighbour, IPv4 route and
    address notifications of the namespace at ``path`` (None: ours)."""
    from pyroute2.netlink.rtnl import (
        RTMGRP_IPV4_IFADDR,
        RTMGRP_IPV4_ROUTE,
        RTMGRP_LINK,
        RTMGRP_NEIGH,
    )

    groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_IFADDR

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, groups))
        return sock

    # a socket keeps the namespace it was born in
    return Namespace.of(path).run(make)


class Decoder:
    """Bytes read from a :func:`subscribe` socket -> pyroute2 messages."""

    def __init__(self) -> None:
        from pyroute2.netlink.rtnl.marshal import MarshalRtnl

        self._marshal = MarshalRtnl()

    def parse(self, data: bytes) -> Iterable[Any]:
        return self._marshal.parse(data)  # type: ignore[no-any-return]


def dump(path: str | Path | None, *, fdb: bool = False) -> list[Any]:
    """Links, IPv4 addresses, main-table routes and IPv4 neighbours of the
    namespace at ``path`` (links first), plus the bridges' forwarding
    databases with ``fdb``; read from a thread inside it (``IPRoute(netns=NAME)``
    would create a namespace of that name if it had just been deleted)."""

    def read() -> list[Any]:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            out = [
                *ipr.get_links(),
                *ipr.get_addr(family=AF_INET),
                *ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN),
                *ipr.get_neighbours(family=AF_INET),
            ]
            if fdb:
                out += ipr.get_neighbours(family=AF_BRIDGE)
            return out

    return Namespace.of(path).run(read)
