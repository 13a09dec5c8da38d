"""Links (netlink through pyroute2) inside a namespace of our own: what it
builds is what it reads back, and the kernel's refusals are OSErrors."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from netsleuth.errors import TargetNotFound
from netsleuth.netns import IfAddress, Links, Namespace, RawLink, dump_links

pytestmark = pytest.mark.netns

PORT_MAC = "02:00:5e:10:00:07"


def _route_oif(dst: str) -> int:
    with Links() as links:
        return links.route_oif(dst)


def _index(name: str) -> int:
    with Links() as links:
        return links.index(name)


def test_links_build_and_read_back(make_netns: Callable[..., Path]) -> None:
    host, guest = make_netns("lk-h"), make_netns("lk-g")
    guest_ns = Namespace.at(guest)

    def build() -> tuple[RawLink, dict[str, str], int | None, int | None, list[IfAddress]]:
        with Links() as links:
            br = links.add_bridge("br-l")
            links.add_address(br, "198.18.46.1", 24)
            port = links.add_veth("vl0", "eth0", peer_netns=guest_ns.path, mac=PORT_MAC)
            links.set(port, master=br, mtu=1400, up=True)
            links.set(br, up=True)
            links.delete(links.add_veth("vl1", "vl1p"))
            try:
                links.set(br, mtu=100_000)
                refused = None
            except OSError as exc:
                refused = exc.errno
            return links.link(port), links.ports(br), links.find("vl1"), refused, links.addresses()

    port, ports, gone, refused, addresses = Namespace.at(host).run(build)
    assert (port.name, port.mac, port.mtu, port.kind) == ("vl0", PORT_MAC, 1400, "veth")
    assert port.netnsid is not None  # its peer lives in another namespace
    assert ports == {"vl0": PORT_MAC} and gone is None and refused == errno.EINVAL
    assert ("198.18.46.1", 24) in [(a.address, a.prefixlen) for a in addresses]
    assert {link.name for link in Namespace.at(host).run(dump_links)} == {"lo", "br-l", "vl0"}

    def guest_side() -> tuple[int, int, list[tuple[str, int]]]:
        with Links() as links:
            eth = links.index("eth0")
            links.add_address(eth, "198.18.46.10", 24)
            links.set(eth, up=True)
            links.add_default_route("198.18.46.1")
            defaults = [
                (r.gateway, r.oif)
                for r in links.routes()
                if r.family == socket.AF_INET and r.dst_len == 0
            ]
            return eth, links.default_oif(), defaults

    eth, default_oif, defaults = guest_ns.run(guest_side)
    assert default_oif == eth and defaults == [("198.18.46.1", eth)]
    assert guest_ns.run(lambda: _route_oif("198.19.255.9")) == eth  # by the default route
    assert Namespace.at(host).run(lambda: _route_oif("198.19.255.9")) == 0  # no route there
    with pytest.raises(TargetNotFound, match="no interface nosuch here"):
        guest_ns.run(lambda: _index("nosuch"))
