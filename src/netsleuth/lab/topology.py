"""Build and tear down the lab: namespaces, bridge, veths, NAT, dnsmasq.

Topology (every name carries ``nsl-<run id>-``; addresses from 198.18.0.0/15)::

    container nsl-ID-cN        host nsl-ID-host                    upstream nsl-ID-up
    eth0 198.18.0.(10+N)/24 -- vcN [labbr0 198.18.0.1/24]
    default via 198.18.0.1        uplink0 198.18.255.1/30 ------- eth0 198.18.255.2/30
    resolv.conf: 198.18.255.2     ip_forward=1, nft masquerade    dnsmasq answers *.lab.test,
                                  of 198.18.0.0/24 out of uplink0 no route back to 198.18.0.0/24

The upstream namespace has no route back to the bridge subnet, so every
answer a container gets proves that the NAT path worked.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from netsleuth import netns
from netsleuth.errors import DependencyMissing, NetsleuthError, NotPermitted
from netsleuth.netns import Links, Namespace, arp_notify_key
from netsleuth.netns.owners import Owner, owner_alive, process_start_time

__all__ = [
    "LAB_PREFIX",
    "LAB_STATE_DIR",
    "LabConfig",
    "LabTopology",
    "add_bridge_peer",
    "build_lab",
    "check_requirements",
    "clean_labs",
    "load_topology",
    "nat_ruleset",
    "nft_apply",
    "seeded_mac",
    "wait_healthy",
]

LAB_PREFIX = "nsl-"
LAB_STATE_DIR = Path("/run/netsleuth/lab")

BRIDGE = "labbr0"
UPLINK = "uplink0"
BRIDGE_ADDR = "198.18.0.1"
BRIDGE_PREFIX = 24
SUBNET = "198.18.0.0/24"
UPLINK_HOST_ADDR = "198.18.255.1"
UPLINK_UP_ADDR = "198.18.255.2"
UPLINK_PREFIX = 30
DNS_ZONE = "lab.test"
DNS_NAME = "www.lab.test"
DNS_ANSWER = "198.18.255.80"
NX_ZONE = "nx.test"
BIG_NAME = "big.lab.test"
"""A TXT record of about 1100 bytes: with EDNS its answer is one large UDP
datagram (dnsmasq caps answers at 1232 bytes), without it a truncated one."""
BIG_TXT = tuple(f"netsleuth-{i}-" + "x" * 205 for i in range(5))
PINNED_MAC = "02:4e:53:4c:00:01"  # locally administered, what `fix` would also choose for a lab
NFT_TABLE = "netsleuth_lab"

_REQUIRED = {"ip": "iproute2", "nft": "nftables", "dnsmasq": "dnsmasq-base"}


@dataclass(frozen=True, slots=True)
class LabConfig:
    containers: int = 1
    pin_mac: bool = False
    arp_notify: bool = False
    run_id: str | None = None
    seed: int | None = None  # same seed, same port MACs: identical cases in a comparison


@dataclass(frozen=True, slots=True)
class LabTopology:
    """Where everything of one lab lives; also written to the lab's state file."""

    run_id: str
    host_ns: str
    upstream_ns: str
    container_ns: list[str]
    bridge: str
    uplink: str
    ports: dict[str, str]
    container_addrs: dict[str, str]
    gateway: str
    subnet: str
    dns_server: str
    dns_name: str
    dns_answer: str
    pinned: bool
    arp_notify: bool
    owner_pid: int
    owner_start_time: int
    pids: list[dict[str, int]] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return LAB_STATE_DIR / f"{self.run_id}.json"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def check_requirements() -> None:
    if os.geteuid() != 0:
        raise NotPermitted("the lab builds network namespaces and needs root; run it with sudo")
    for program, package in _REQUIRED.items():
        if shutil.which(program) is None:
            raise DependencyMissing(program, package)


def _which(program: str) -> str:
    return shutil.which(program) or f"/usr/sbin/{program}"


def load_topology(run_id: str) -> LabTopology:
    path = LAB_STATE_DIR / f"{run_id}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NetsleuthError(
            f"no lab with run id {run_id} is running; start one with `netsleuth lab run`"
        ) from None
    return LabTopology(**data)


def _kill_recorded(pids: list[dict[str, int]]) -> None:
    """End the processes a lab started (dnsmasq), by PID, only if they are still
    the same processes (start time matches)."""
    for entry in pids:
        pid, start = entry["pid"], entry["start_time"]
        if process_start_time(pid) != start:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if process_start_time(pid) != start:
                break
            time.sleep(0.02)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def clean_labs() -> list[str]:
    """Remove every lab whose owner is dead (after a crash or SIGKILL), and any
    namespace with the lab prefix that no live lab owns. Returns what went."""
    removed: list[str] = []
    from netsleuth.docker.daemon import DOCKER_RUN_DIR, clean_stale_daemons

    if DOCKER_RUN_DIR.is_dir():  # throwaway dockerds of dead docker labs go first
        removed += [f"dockerd {d}" for d in clean_stale_daemons()]
    if LAB_STATE_DIR.is_dir():
        for state in sorted(LAB_STATE_DIR.glob("*.json")):
            try:
                topo = LabTopology(**json.loads(state.read_text()))
            except (OSError, ValueError, TypeError):
                state.unlink(missing_ok=True)
                continue
            if owner_alive(Owner(topo.owner_pid, topo.owner_start_time)):
                continue
            _kill_recorded(topo.pids)
            for name in [*topo.container_ns, topo.host_ns, topo.upstream_ns]:
                if netns.exists(name):
                    netns.remove_owned(name)
                    removed.append(name)
            state.unlink(missing_ok=True)
    removed += netns.clean_stale(LAB_PREFIX)
    return removed


def nat_ruleset(uplink: str) -> str:
    rules = [
        {"add": {"table": {"family": "ip", "name": NFT_TABLE}}},
        {
            "add": {
                "chain": {
                    "family": "ip",
                    "table": NFT_TABLE,
                    "name": "postrouting",
                    "type": "nat",
                    "hook": "postrouting",
                    "prio": 100,
                    "policy": "accept",
                }
            }
        },
        {
            "add": {
                "rule": {
                    "family": "ip",
                    "table": NFT_TABLE,
                    "chain": "postrouting",
                    "comment": "netsleuth lab NAT",
                    "expr": [
                        {
                            "match": {
                                "op": "==",
                                "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                "right": {"prefix": {"addr": "198.18.0.0", "len": 24}},
                            }
                        },
                        {
                            "match": {
                                "op": "==",
                                "left": {"meta": {"key": "oifname"}},
                                "right": uplink,
                            }
                        },
                        {"masquerade": None},
                    ],
                }
            }
        },
    ]
    return json.dumps({"nftables": rules})


def nft_apply(ns: str, ruleset_json: str) -> None:
    proc = subprocess.run(
        netns.exec_argv(ns, [_which("nft"), "-j", "-f", "-"]),
        input=ruleset_json,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise NetsleuthError(f"nft failed in {ns}: {proc.stderr.strip()}")


def wait_healthy(
    topo: LabTopology, paths: Sequence[str], timeout: float = 60.0, needed: int = 3
) -> float | None:
    """Seconds until every namespace in ``paths`` got ``needed`` DNS answers
    in a row, or None if that did not happen within ``timeout``."""
    query = dns.message.make_query(topo.dns_name, dns.rdatatype.A)
    start = time.monotonic()
    for path in paths:
        ns = Namespace.at(path)
        streak = 0
        while streak < needed:
            if time.monotonic() - start > timeout:
                return None
            try:
                ns.run(lambda: dns.query.udp(query, topo.dns_server, timeout=0.2))
                streak += 1
            except (dns.exception.DNSException, OSError):
                streak = 0
                time.sleep(0.05)
    return time.monotonic() - start


@contextlib.contextmanager
def build_lab(config: LabConfig) -> Iterator[LabTopology]:
    """Build a lab, yield its topology, and always tear it down."""
    check_requirements()
    clean_labs()
    run_id = config.run_id or secrets.token_hex(3)
    base = f"{LAB_PREFIX}{run_id}"
    host_ns, up_ns = f"{base}-host", f"{base}-up"
    containers = [f"{base}-c{i}" for i in range(config.containers)]
    state_file = LAB_STATE_DIR / f"{run_id}.json"
    if state_file.exists() or any(netns.exists(n) for n in [host_ns, up_ns, *containers]):
        raise NetsleuthError(
            f"lab run id {run_id} is already in use; pick another --run-id or run "
            "`netsleuth lab clean`"
        )
    topo = LabTopology(
        run_id=run_id,
        host_ns=host_ns,
        upstream_ns=up_ns,
        container_ns=containers,
        bridge=BRIDGE,
        uplink=UPLINK,
        ports={ns: f"vc{i}" for i, ns in enumerate(containers)},
        container_addrs={ns: f"198.18.0.{10 + i}" for i, ns in enumerate(containers)},
        gateway=BRIDGE_ADDR,
        subnet=SUBNET,
        dns_server=UPLINK_UP_ADDR,
        dns_name=DNS_NAME,
        dns_answer=DNS_ANSWER,
        pinned=config.pin_mac,
        arp_notify=config.arp_notify,
        owner_pid=os.getpid(),
        owner_start_time=Owner.me().start_time,
    )
    LAB_STATE_DIR.mkdir(parents=True, exist_ok=True)
    state_file.write_text(topo.to_json())
    dnsmasq: subprocess.Popen[bytes] | None = None
    try:
        _build_namespaces(topo, config.seed)
        dnsmasq = _start_dnsmasq(topo)
        topo.pids.append({"pid": dnsmasq.pid, "start_time": process_start_time(dnsmasq.pid) or 0})
        state_file.write_text(topo.to_json())
        # One answer in the host namespace and in every container: the lab is
        # up, and each container has resolved its gateway (the bridge's MAC as
        # it is before any churn), as a client that has been talking would have.
        paths = [str(netns.netns_path(name)) for name in [host_ns, *containers]]
        if wait_healthy(topo, paths, timeout=5.0, needed=1) is None:
            raise NetsleuthError(f"dnsmasq in {up_ns} did not answer within 5 s")
        yield topo
    finally:
        if dnsmasq is not None:
            dnsmasq.terminate()
            try:
                dnsmasq.wait(2)
            except subprocess.TimeoutExpired:
                dnsmasq.kill()
                dnsmasq.wait()
        for name in [*containers, host_ns, up_ns]:
            netns.remove_owned(name)
        state_file.unlink(missing_ok=True)


def seeded_mac(seed: int, what: str) -> str:
    """A random-looking locally administered unicast MAC, the same for the same
    seed and purpose (the kernel draws its random MACs the same way)."""
    raw = bytearray(random.Random(f"{seed}:{what}").randbytes(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def high_mac(seed: int, what: str) -> str:
    """A locally administered unicast MAC (``fe:ff:ff:...``) above the MAC of
    any other port in practice, for a port the bridge must never take its MAC
    from (an unpinned bridge takes the lowest)."""
    tail = seeded_mac(seed, what).split(":")[3:]
    return ":".join(["fe", "ff", "ff", *tail])


def _build_namespaces(topo: LabTopology, seed: int | None) -> None:
    resolv = f"nameserver {topo.dns_server}\noptions timeout:1 attempts:1\n"
    for name in [topo.host_ns, topo.upstream_ns]:
        netns.create_owned(name)
    for name in topo.container_ns:
        netns.create_owned(name, {"resolv.conf": resolv})
    host, upstream = Namespace.named(topo.host_ns), Namespace.named(topo.upstream_ns)
    containers = {name: Namespace.named(name) for name in topo.container_ns}
    for ns in [host, upstream, *containers.values()]:
        ns.set_sysctl("net/ipv6/conf/all/disable_ipv6", 1)
        ns.set_sysctl("net/ipv6/conf/default/disable_ipv6", 1)
        ns.run(_lo_up)

    def host_side() -> None:
        with Links() as links:
            br = links.add_bridge(topo.bridge, mac=PINNED_MAC if topo.pinned else None)
            links.add_address(br, BRIDGE_ADDR, BRIDGE_PREFIX)
            links.set(br, up=True)
            up = links.add_veth(topo.uplink, "eth0", peer_netns=upstream.path)
            links.add_address(up, UPLINK_HOST_ADDR, UPLINK_PREFIX)
            links.set(up, up=True)
            for i, (ns, port) in enumerate(topo.ports.items()):
                mac = seeded_mac(seed, f"port{i}") if seed is not None else None
                idx = links.add_veth(port, "eth0", peer_netns=containers[ns].path, mac=mac)
                links.set(idx, master=br, up=True)

    host.run(host_side)
    host.set_sysctl("net/ipv4/ip_forward", 1)
    if topo.arp_notify:
        host.set_sysctl(arp_notify_key(topo.bridge), 1)
    nft_apply(topo.host_ns, nat_ruleset(topo.uplink))
    upstream.run(lambda: _eth0_up(UPLINK_UP_ADDR, UPLINK_PREFIX))
    for name, addr in topo.container_addrs.items():
        containers[name].run(functools.partial(_eth0_up, addr, BRIDGE_PREFIX, BRIDGE_ADDR))


def add_bridge_peer(
    topo: LabTopology,
    name: str,
    port: str,
    port_mac: str,
    address: str | None = None,
    *,
    up: bool = False,
) -> Namespace:
    """One more namespace ``name`` (owned, IPv6 off) on the lab bridge: a veth
    ``port`` (with ``port_mac``, so the bridge's MAC is not moved by a lower
    one) on the bridge, ``eth0`` inside; with ``address``, eth0 and lo are up,
    eth0 addressed in the bridge's subnet and routed by the gateway; without
    one, ``up`` brings eth0 up unaddressed (a bystander the bridge floods to).
    Removing the namespace (:func:`netsleuth.netns.remove_owned`) takes the
    port with it."""
    path = netns.create_owned(name)
    peer = Namespace.named(name)
    peer.set_sysctl("net/ipv6/conf/all/disable_ipv6", 1)
    peer.set_sysctl("net/ipv6/conf/default/disable_ipv6", 1)

    def host_side() -> None:
        with Links() as links:
            idx = links.add_veth(port, "eth0", peer_netns=path, mac=port_mac)
            links.set(idx, master=links.index(topo.bridge), up=True)

    Namespace.named(topo.host_ns).run(host_side)
    if address is not None:
        peer.run(_lo_up)
        peer.run(functools.partial(_eth0_up, address, BRIDGE_PREFIX, topo.gateway))
    elif up:
        peer.run(_link_up)
    return peer


def _lo_up() -> None:
    with Links() as links:
        links.set(links.index("lo"), up=True)


def _link_up(name: str = "eth0") -> None:
    with Links() as links:
        links.set(links.index(name), up=True)


def _eth0_up(address: str, prefixlen: int, gateway: str | None = None) -> None:
    """Address ``eth0`` (the peer end of a veth), bring it up, route by ``gateway``."""
    with Links() as links:
        eth = links.index("eth0")
        links.add_address(eth, address, prefixlen)
        links.set(eth, up=True)
        if gateway is not None:
            links.add_default_route(gateway)


def _start_dnsmasq(topo: LabTopology) -> subprocess.Popen[bytes]:
    argv = [
        _which("dnsmasq"),
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={topo.dns_server}",
        f"--address=/{DNS_ZONE}/{DNS_ANSWER}",
        f"--address=/{NX_ZONE}/",  # every name under it is NXDOMAIN
        f"--txt-record={BIG_NAME},{','.join(BIG_TXT)}",  # asked only by --fault mtu-blackhole
        "--pid-file",
        "--user=root",
        "--cache-size=0",
        "--log-facility=/dev/null",
    ]
    # `ip netns exec` execs dnsmasq, so the PID we hold is dnsmasq's own.
    return subprocess.Popen(
        netns.exec_argv(topo.upstream_ns, argv, die_with_parent=True),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
