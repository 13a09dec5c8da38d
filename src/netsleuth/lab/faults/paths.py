"""Faults of the path between the containers and their resolver:

- ``rp-filter`` (:class:`RpFilterFlap`): a second link from the lab host to
  the upstream namespace; the containers' queries are NATed to that link's
  address but leave by the first one, and now and then the upstream's route
  back to that address flips to the second link. The replies then arrive on
  an interface the reverse route for their source does not use, and strict
  reverse-path filtering (``rp_filter=1``) drops them.
- ``mtu-blackhole`` (:class:`MtuBlackhole`): the bridge's MTU lowered below
  the upstream's 1500, and the ICMP "fragmentation needed" the lab host sends
  back dropped in the upstream namespace: small answers pass, the large EDNS
  answer (:data:`~netsleuth.lab.topology.BIG_NAME`) never arrives.
- ``resolver-unreachable`` (:class:`ResolverUnreachable`): the containers'
  resolv.conf names a loopback stub (127.0.0.53) that exists only on the
  host, while the lab host's own resolv.conf names the lab resolver.

Everything is made inside the lab's namespaces (and their /etc/netns files)
and goes away with them.
"""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from netsleuth.errors import NetsleuthError
from netsleuth.lab.background import BackgroundLoop
from netsleuth.lab.topology import BIG_NAME, UPLINK_HOST_ADDR, LabTopology, nft_apply
from netsleuth.netns import Links, Namespace
from netsleuth.netns.core import NETNS_ETC_DIR

__all__ = [
    "LOOPBACK_STUB",
    "MtuBlackhole",
    "ResolverUnreachable",
    "RpFilterFlap",
    "mtu_probes",
    "resolver_probes",
]

# rp-filter: a second /30 between the lab host (ALT_HOST) and the upstream (ALT_UP).
ALT_LINK, ALT_PEER = "uplink1", "eth1"
ALT_HOST, ALT_UP, ALT_PREFIX = "198.18.254.1", "198.18.254.2", 30
RP_TABLE = "netsleuth_rp"

# mtu-blackhole: the bridge's MTU while the upstream sends 1500-byte datagrams.
NARROW_MTU = 1000
EDNS_PAYLOAD = 4096
MTU_TABLE = "netsleuth_mtu"

LOOPBACK_STUB = "127.0.0.53"
"""systemd-resolved's stub address: on the host only."""


def _ip(ns: str, *args: str) -> None:
    """``ip -n NS ARGS`` (iproute2 is a lab requirement)."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    proc = subprocess.run([ip, "-n", ns, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetsleuthError(f"ip {' '.join(args)} failed in {ns}: {proc.stderr.strip()}")


def _nft_table(table: str, chain: dict[str, object], rules: list[list[object]]) -> str:
    """One table with one base chain and its rules, as nft JSON."""
    base = {"family": "ip", "table": table, **chain}
    cmds: list[object] = [
        {"add": {"table": {"family": "ip", "name": table}}},
        {"add": {"chain": base}},
    ]
    cmds += [
        {"add": {"rule": {"family": "ip", "table": table, "chain": chain["name"], "expr": expr}}}
        for expr in rules
    ]
    return json.dumps({"nftables": cmds})


def _match(protocol: str, name: str, value: object) -> dict[str, object]:
    left = {"payload": {"protocol": protocol, "field": name}}
    return {"match": {"op": "==", "left": left, "right": value}}


class RpFilterFlap(BackgroundLoop):
    """Strict reverse-path filtering meets an asymmetric return path.

    On enter: a veth ``uplink1`` (lab host, 198.18.254.1/30) / ``eth1``
    (upstream); the containers' queries are SNATed to 198.18.254.1 and still
    leave by ``uplink0`` (the host's route to the resolver); the upstream
    routes 198.18.254.1 back through ``uplink0`` as well; ``rp_filter=1`` on
    ``all`` and ``uplink1`` in the lab host. Then now and then (gaps drawn
    from ``gaps`` seconds with ``seed``), for ``asymmetric`` seconds, that
    upstream route is removed: the replies take the connected route to
    ``uplink1``, where the reverse route for the resolver's address points to
    ``uplink0``, and the kernel drops them
    (``IPReversePathFilter``). The host's own queries (from ``uplink0``'s
    address) keep their symmetric path: the host control is not hit.
    """

    name = "lab-rp-filter"

    def __init__(
        self,
        topo: LabTopology,
        seed: int = 0,
        gaps: tuple[float, float] = (3.0, 6.0),
        asymmetric: float = 0.25,
        *,
        fixed: bool = False,
    ) -> None:
        self.topo = topo
        self.fixed = fixed
        self.rng = random.Random(seed)
        self.gaps = gaps
        self.asymmetric = asymmetric
        self.flips = 0
        super().__init__()

    def start(self) -> None:
        topo = self.topo
        upstream = Namespace.named(topo.upstream_ns)

        def host_side() -> None:
            with Links() as links:
                idx = links.add_veth(ALT_LINK, ALT_PEER, peer_netns=upstream.path)
                links.add_address(idx, ALT_HOST, ALT_PREFIX)
                links.set(idx, up=True)

        def upstream_side() -> None:
            with Links() as links:
                idx = links.index(ALT_PEER)
                links.add_address(idx, ALT_UP, ALT_PREFIX)
                links.set(idx, up=True)

        host = Namespace.named(topo.host_ns)
        host.run(host_side)
        upstream.run(upstream_side)
        # ARP for the lab host on eth1 from eth1's own address: asked from the
        # resolver's (eth0's), the request itself would fail the lab host's
        # reverse-path check and no reply would ever be sent there
        upstream.set_sysctl(f"net/ipv4/conf/{ALT_PEER}/arp_announce", 2)
        for key in ("net/ipv4/conf/all/rp_filter", f"net/ipv4/conf/{ALT_LINK}/rp_filter"):
            host.set_sysctl(key, 1)
        if self.fixed:  # what `netsleuth fix rp-filter uplink1 --netns HOST --apply` does
            from netsleuth.fix.rpfilter import read_rp_filter_plan
            from netsleuth.fix.sysctld import apply_sysctl_plan

            plan = read_rp_filter_plan(ALT_LINK, topo.host_ns, etc_root=Path("/"), persist=False)
            apply_sysctl_plan(plan, topo.host_ns)
        subnet = ipaddress.IPv4Network(topo.subnet)
        prefix = {"prefix": {"addr": str(subnet.network_address), "len": subnet.prefixlen}}
        snat = [
            _match("ip", "saddr", prefix),
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": topo.uplink}},
            {"snat": {"addr": ALT_HOST}},
        ]
        # before the lab's masquerade (priority 100): the first NAT decision wins
        chain = {"name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 50}
        nft_apply(topo.host_ns, _nft_table(RP_TABLE, {**chain, "policy": "accept"}, [snat]))
        self._symmetric()
        super().start()

    def _symmetric(self) -> None:
        _ip(self.topo.upstream_ns, "route", "replace", f"{ALT_HOST}/32", "via", UPLINK_HOST_ADDR)

    def _asymmetric(self) -> None:
        _ip(self.topo.upstream_ns, "route", "del", f"{ALT_HOST}/32")

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.gaps)):
            self._asymmetric()
            self.flips += 1
            stopped = self._stop.wait(self.asymmetric)
            self._symmetric()
            if stopped:
                return


class MtuBlackhole:
    """The bridge's MTU at :data:`NARROW_MTU` (its ports and the containers
    keep 1500) and ICMP "fragmentation needed" dropped on its way into the
    upstream namespace: the upstream keeps sending 1500-byte datagrams with
    DF set, the lab host cannot forward them onto the bridge, and its ICMP
    never teaches the upstream a smaller path MTU."""

    def __init__(self, topo: LabTopology) -> None:
        self.topo = topo

    def __enter__(self) -> MtuBlackhole:
        topo = self.topo

        def narrow() -> None:
            with Links() as links:
                links.set(links.index(topo.bridge), mtu=NARROW_MTU)

        Namespace.named(topo.host_ns).run(narrow)
        drop = [
            _match("icmp", "type", "destination-unreachable"),
            _match("icmp", "code", "frag-needed"),
            {"drop": None},
        ]
        chain = {"name": "input", "type": "filter", "hook": "input", "prio": 0}
        nft_apply(topo.upstream_ns, _nft_table(MTU_TABLE, {**chain, "policy": "accept"}, [drop]))
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None  # the namespaces go away with the lab


def mtu_probes(topo: LabTopology) -> tuple[str, ...]:
    """The small default query and the large EDNS one, to the same resolver."""
    return (
        f"dns:{topo.dns_server}/{topo.dns_name}/A",
        f"dns:{topo.dns_server}/{BIG_NAME}/TXT/edns={EDNS_PAYLOAD}",
    )


class ResolverUnreachable:
    """The containers' resolv.conf names :data:`LOOPBACK_STUB`; the lab host's
    own names the lab resolver.

    Persistent, as in the field: a container that got a copy of the host's
    stub resolv.conf keeps it for its life, and every lookup fails from its
    first (a probe worker, like a resolver library, reads resolv.conf when it
    starts). Nothing listens on the namespace's own loopback, so each query
    is refused at once.
    """

    def __init__(self, topo: LabTopology) -> None:
        self.topo = topo

    def __enter__(self) -> ResolverUnreachable:
        topo = self.topo
        host_etc = NETNS_ETC_DIR / topo.host_ns
        host_etc.mkdir(parents=True, exist_ok=True)  # removed with the namespace
        (host_etc / "resolv.conf").write_text(f"nameserver {topo.dns_server}\n")
        for name in topo.container_ns:
            # written in place: a bind mount of the file keeps seeing it
            (NETNS_ETC_DIR / name / "resolv.conf").write_text(
                f"nameserver {LOOPBACK_STUB}\noptions edns0 trust-ad\n"
            )
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None  # the files go away with the namespaces


def resolver_probes(topo: LabTopology) -> tuple[str, ...]:
    """The lab's query to every nameserver of each target's own resolv.conf."""
    return (f"dns:{topo.dns_name}/A",)
