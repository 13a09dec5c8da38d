"""Hand-built host snapshots for the audit tests: eth0 with the default
route, and br0 198.18.1.1/24 with one veth port, NATed."""

from __future__ import annotations

from typing import Any

from netsleuth.audit import HostSnapshot
from netsleuth.audit.snapshot import Address, Firewall, Link, NatRule, Route

__all__ = ["BR_MAC", "ETH0", "PORT_MAC", "bridge", "host", "port"]

BR_MAC = "02:42:c6:12:00:01"
PORT_MAC = "26:aa:10:00:00:01"


def bridge(name: str = "br0", aat: int | None = 1, mac: str = BR_MAC, **kw: Any) -> Link:
    return Link(name=name, index=10, mac=mac, mtu=kw.pop("mtu", 1500), kind="bridge",
                addr_assign_type=aat, **kw)  # fmt: skip


def port(
    name: str, master: str = "br0", mac: str = PORT_MAC, kind: str = "veth", **kw: Any
) -> Link:
    return Link(name=name, index=20, mac=mac, mtu=kw.pop("mtu", 1500), kind=kind,
                master=master, addr_assign_type=3, **kw)  # fmt: skip


ETH0 = Link(name="eth0", index=2, mac="52:54:00:12:34:56", mtu=1500, addr_assign_type=0)


def host(**kw: Any) -> HostSnapshot:
    """A host with eth0 (default route) and br0 198.18.1.1/24 with one veth port."""
    base: dict[str, Any] = {
        "links": (ETH0, bridge(), port("veth0")),
        "addresses": (Address("eth0", "192.0.2.2", 24), Address("br0", "198.18.1.1", 24)),
        "routes": (
            Route("0.0.0.0/0", "eth0", "192.0.2.1"),
            Route("192.0.2.0/24", "eth0"),
            Route("198.18.1.0/24", "br0"),
        ),
        "sysctls": {"net.ipv4.ip_forward": "1", "net.ipv4.conf.br0.arp_notify": "0"},
        "firewall": Firewall(
            backends=("nftables",),
            nat_rules=(NatRule("nft ip nat postrouting", "MASQUERADE", "198.18.1.0/24"),),
        ),
    }
    base.update(kw)
    return HostSnapshot(**base)
