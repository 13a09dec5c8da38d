"""The host snapshot: everything the audit rules look at, as frozen data.

A :class:`HostSnapshot` describes one network namespace (the host's or
another one) at one moment. Readers in :mod:`netsleuth.audit.readers` fill
it from sysfs, procfs, netlink, the firewall and the configuration files;
tests build it by hand or from fixture trees. Rules never do I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from netsleuth.docker.daemons import DockerdProcess
from netsleuth.model import ADDR_ASSIGN_SET

__all__ = [
    "ADDR_ASSIGN_NAMES",
    "ZERO_MAC",
    "Address",
    "ConntrackStats",
    "DockerdProcess",
    "Firewall",
    "ForwardChain",
    "HostSnapshot",
    "Link",
    "LinkPolicy",
    "NatRule",
    "NeighStats",
    "ResolverView",
    "Route",
    "UdpSocket",
]

# /sys/class/net/IF/addr_assign_type values (include/uapi/linux/netdevice.h).
ADDR_PERM = 0
ADDR_RANDOM = 1
ADDR_STOLEN = 2
ADDR_ASSIGN_NAMES = {0: "permanent", 1: "random", 2: "stolen", 3: "set"}

ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True, slots=True)
class Link:
    """One network interface. ``kind`` is the netlink kind (``bridge``,
    ``veth``, ``tap``, ...; empty for physical or unknown devices);
    ``addr_assign_type`` is None when sysfs could not be read."""

    name: str
    index: int
    mac: str
    mtu: int
    kind: str = ""
    master: str = ""
    addr_assign_type: int | None = None
    operstate: str = ""
    peer_netnsid: int | None = None
    stp_state: int = 0
    forward_delay_cs: int = 0

    @property
    def is_bridge(self) -> bool:
        return self.kind == "bridge"

    @property
    def pinned(self) -> bool:
        return self.addr_assign_type == ADDR_ASSIGN_SET


@dataclass(frozen=True, slots=True)
class Address:
    ifname: str
    address: str
    prefixlen: int

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{self.address}/{self.prefixlen}", strict=False)


@dataclass(frozen=True, slots=True)
class Route:
    """A unicast route of the main table. ``dst`` is a network in CIDR form."""

    dst: str
    ifname: str
    gateway: str = ""
    proto: str = ""

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.dst, strict=False)

    @property
    def is_default(self) -> bool:
        return self.network.prefixlen == 0


@dataclass(frozen=True, slots=True)
class NatRule:
    """A MASQUERADE/SNAT rule. ``source`` is the matched source network
    (CIDR) or empty when the rule matches every source; ``out_not`` lists
    ``! -o IF`` / ``oifname != IF`` exclusions, ``out`` a required egress."""

    origin: str
    action: str
    source: str = ""
    out: str = ""
    out_not: str = ""


@dataclass(frozen=True, slots=True)
class ForwardChain:
    """A base chain on the forward hook: its policy and the interfaces and
    networks its accept/jump rules let through, up to the first rule that
    ends the chain for everything (rules reached by unconditional jumps
    included). ``drops_all`` says that rule is an unconditional drop or
    reject (firewalld ends its chains so), which blocks like a drop policy;
    ``accepts_all`` that it is an unconditional accept."""

    origin: str
    policy: str
    accepts_ifnames: tuple[str, ...] = ()
    accepts_networks: tuple[str, ...] = ()
    accepts_all: bool = False
    drops_all: bool = False

    @property
    def drops_by_default(self) -> bool:
        """What nothing accepted before meets: a drop."""
        return self.policy.lower() == "drop" or self.drops_all


@dataclass(frozen=True, slots=True)
class Firewall:
    """What the audit needs from nftables and iptables-save."""

    backends: tuple[str, ...] = ()
    nat_rules: tuple[NatRule, ...] = ()
    forward_chains: tuple[ForwardChain, ...] = ()
    readable: bool = True


@dataclass(frozen=True, slots=True)
class ConntrackStats:
    count: int
    max: int
    insert_failed: int = 0
    drop: int = 0
    # Counters again after ``--sample`` seconds, if sampled.
    insert_failed_later: int | None = None
    drop_later: int | None = None
    sample_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class NeighStats:
    """The IPv4 neighbour table: ``entries`` is the whole table's (every
    namespace shares it) where the kernel shows it, else this namespace's."""

    entries: int
    gc_thresh3: int
    table_fulls: int = 0


@dataclass(frozen=True, slots=True)
class ResolverView:
    """The resolv.conf a namespace (or container) uses, and which loopback
    resolvers in it actually have a UDP socket bound on port 53.
    ``options`` are the words of its ``options`` lines (``ndots:5``,
    ``single-request-reopen``), ``search`` the domains of its last
    ``search``/``domain`` line (glibc keeps only the last one)."""

    scope: str
    path: str
    nameservers: tuple[str, ...]
    loopback_listeners: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    search: tuple[str, ...] = ()

    @property
    def ndots(self) -> int:
        """glibc's ndots (default 1, capped at 15; the last option wins)."""
        value = 1
        for opt in self.options:
            if opt.startswith("ndots:"):
                try:
                    value = min(max(int(opt.split(":", 1)[1]), 0), 15)
                except ValueError:
                    continue
        return value


@dataclass(frozen=True, slots=True)
class UdpSocket:
    """A UDP socket that serves DNS: its local address and port, the bytes
    waiting in its receive queue, and the datagrams the kernel dropped for
    it since it was opened (the ``drops`` column of /proc/net/udp)."""

    address: str
    port: int
    rx_queue: int = 0
    drops: int = 0


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """A systemd ``.link`` file's ``MACAddressPolicy`` and whether it
    matches bridges."""

    path: str
    policy: str
    matches_bridges: bool


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """One namespace at one moment. ``netns`` is ``host`` or the name of
    the namespace. Sysctl keys are dotted (``net.ipv4.ip_forward``); a key
    is missing when the file does not exist (module not loaded)."""

    netns: str = "host"
    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    conntrack: ConntrackStats | None = None
    neigh: NeighStats | None = None
    firewall: Firewall = field(default_factory=Firewall)
    resolvers: tuple[ResolverView, ...] = ()
    docker: tuple[DockerdProcess, ...] = ()  # the dockerds running in this namespace
    link_policies: tuple[LinkPolicy, ...] = ()
    udev_running: bool = False
    kernel: str = ""  # /proc/sys/kernel/osrelease, e.g. "6.1.0-18-amd64"; "" if unknown
    dns_sockets: tuple[UdpSocket, ...] = ()  # UDP sockets on port 53 (or 127.0.0.11) here
    # netnsid (as this namespace numbers them) -> name, for veth peers.
    peer_namespaces: Mapping[int, str] = field(default_factory=dict)

    def link(self, name: str) -> Link | None:
        for link in self.links:
            if link.name == name:
                return link
        return None

    @property
    def bridges(self) -> tuple[Link, ...]:
        return tuple(link for link in self.links if link.is_bridge)

    def ports(self, bridge: str) -> tuple[Link, ...]:
        return tuple(link for link in self.links if link.master == bridge)

    def addresses_of(self, ifname: str) -> tuple[Address, ...]:
        return tuple(a for a in self.addresses if a.ifname == ifname)

    def ipv4_networks_of(self, ifname: str) -> tuple[ipaddress.IPv4Network, ...]:
        nets = []
        for a in self.addresses_of(ifname):
            net = a.network
            if isinstance(net, ipaddress.IPv4Network):
                nets.append(net)
        return tuple(nets)

    def attached(self, bridge: str) -> list[str]:
        """Where each port's peer lives: ``port -> netns NAME`` (or id)."""
        out = []
        for port in self.ports(bridge):
            if port.peer_netnsid is not None:
                where = self.peer_namespaces.get(port.peer_netnsid, f"netns id {port.peer_netnsid}")
                out.append(f"{port.name} -> {where}")
        return out

    def sysctl(self, key: str) -> str | None:
        return self.sysctls.get(key)

    def sysctl_int(self, key: str) -> int | None:
        value = self.sysctls.get(key)
        if value is None:
            return None
        try:
            return int(value.split()[0])
        except (ValueError, IndexError):
            return None

    @property
    def kernel_version(self) -> tuple[int, int] | None:
        """(major, minor) of :attr:`kernel`, None when unknown."""
        m = re.match(r"(\d+)\.(\d+)", self.kernel)
        return (int(m.group(1)), int(m.group(2))) if m else None

    def docker_bridges(self) -> dict[str, str]:
        """Bridge name → how a Docker daemon was told to use it."""
        used: dict[str, str] = {}
        for d in self.docker:
            if d.told_bridge:
                used[d.told_bridge] = f"dockerd pid {d.pid} {d.bridge_source}"
            for name in d.network_bridges:
                used.setdefault(name, f"dockerd pid {d.pid} com.docker.network.bridge.name")
        return used
