"""Thin readers that fill a :class:`HostSnapshot` from the running system.

Every reader takes its roots (``sys_root``, ``proc_root``, ``etc_root``,
``lib_root``) so fixture trees work as well as the live system. Netlink
(links with their kind, addresses, routes, neighbours) and the firewall
programs are only used in live mode. Another namespace is read by a
worker that enters it for good (:meth:`netsleuth.netns.Namespace.run_process`:
sysfs remounted, ``/etc/netns/NAME`` bound over ``/etc``), which hands the
snapshot back. Netlink comes from the host layer (:mod:`netsleuth.netns`),
dockerd processes from :func:`netsleuth.docker.list_daemons`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from netsleuth.audit.firewall import parse_iptables_save, parse_nft_json
from netsleuth.audit.snapshot import (
    Address,
    ConntrackStats,
    Firewall,
    HostSnapshot,
    Link,
    LinkPolicy,
    NeighStats,
    ResolverView,
    Route,
    UdpSocket,
)
from netsleuth.docker.daemons import list_daemons
from netsleuth.errors import NetsleuthError, TargetNotFound
from netsleuth.model import Bridge
from netsleuth.netns import (
    Links,
    Namespace,
    arp_notify_key,
    count_neighbours,
    dump_links,
    list_named,
    netns_id,
    netns_path,
    sysctl_path,
)

__all__ = [
    "Roots",
    "bridge_mac_state",
    "dns_sockets",
    "parse_resolv_conf",
    "read_link_policies",
    "read_resolver",
    "read_snapshot",
    "read_snapshot_in",
    "read_sysfs_links",
    "resolver_in",
    "udev_running",
]


@dataclass(frozen=True, slots=True)
class Roots:
    """Where the readers look. The defaults are the live system."""

    sys: Path = Path("/sys")
    proc: Path = Path("/proc")
    etc: Path = Path("/etc")
    lib: Path = Path("/usr/lib")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path, default: int = 0) -> int:
    text = _read(path)
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


# --- sysfs ---------------------------------------------------------------


def read_sysfs_links(sys_root: Path, only: Iterable[str] | None = None) -> dict[str, Link]:
    """Links as sysfs shows them (``addr_assign_type`` lives only here);
    ``only`` limits the reading to those names."""
    base = sys_root / "class" / "net"
    links: dict[str, Link] = {}
    try:
        entries = sorted(only) if only is not None else sorted(os.listdir(base))
    except OSError:
        return links
    for name in entries:
        d = base / name
        aat = _read(d / "addr_assign_type")
        master = ""
        with contextlib.suppress(OSError):
            master = os.path.basename(os.readlink(d / "master"))
        is_bridge = (d / "bridge").is_dir()
        ifindex = _read_int(d / "ifindex")
        iflink = _read_int(d / "iflink", ifindex)
        if is_bridge:
            kind = "bridge"
        elif (d / "tun_flags").exists():
            kind = "tun"
        elif iflink != ifindex and not os.path.lexists(d / "device"):
            kind = "veth"
        else:
            kind = ""
        links[name] = Link(
            name=name,
            index=ifindex,
            mac=(_read(d / "address") or "").lower(),
            mtu=_read_int(d / "mtu"),
            kind=kind,
            master=master,
            addr_assign_type=int(aat) if aat and aat.isdigit() else None,
            operstate=_read(d / "operstate") or "",
            stp_state=_read_int(d / "bridge" / "stp_state") if is_bridge else 0,
            forward_delay_cs=_read_int(d / "bridge" / "forward_delay") if is_bridge else 0,
        )
    return links


# --- procfs --------------------------------------------------------------


def read_sysctls(proc_root: Path, ifnames: Iterable[str]) -> dict[str, str]:
    """The sysctls the rules use; a key is absent when its file is."""
    keys = [
        "net.ipv4.ip_forward",
        "net.ipv4.conf.all.rp_filter",
        arp_notify_key("all"),
        "net.ipv4.neigh.default.gc_thresh3",
        "net.netfilter.nf_conntrack_count",
        "net.netfilter.nf_conntrack_max",
        "net.bridge.bridge-nf-call-iptables",
        "net.core.rmem_default",
        "net.core.rmem_max",
    ]
    for name in ifnames:
        keys += [arp_notify_key(name), f"net.ipv4.conf.{name}.rp_filter"]
    out = {}
    for key in keys:
        value = _read(sysctl_path(key, proc_root))
        if value is not None:
            out[key] = value
    return out


def _stat_columns(path: Path, columns: Iterable[str]) -> dict[str, int] | None:
    """Sum per-CPU hex counters of a /proc/net/stat file."""
    text = _read(path)
    if not text:
        return None
    lines = text.splitlines()
    header = lines[0].split()
    sums = dict.fromkeys(columns, 0)
    for line in lines[1:]:
        values = line.split()
        for col in sums:
            if col in header and header.index(col) < len(values):
                sums[col] += int(values[header.index(col)], 16)
    return sums


def read_conntrack(proc_root: Path, sysctls: dict[str, str]) -> ConntrackStats | None:
    if "net.netfilter.nf_conntrack_max" not in sysctls:
        return None
    stats = _stat_columns(proc_root / "net" / "stat" / "nf_conntrack", ["insert_failed", "drop"])
    stats = stats or {"insert_failed": 0, "drop": 0}
    return ConntrackStats(
        count=int(sysctls.get("net.netfilter.nf_conntrack_count", "0")),
        max=int(sysctls["net.netfilter.nf_conntrack_max"]),
        insert_failed=stats["insert_failed"],
        drop=stats["drop"],
    )


def sample_conntrack(
    proc_root: Path, first: ConntrackStats, seconds: float, sleep: Callable[[float], None]
) -> ConntrackStats:
    sleep(seconds)
    later = _stat_columns(proc_root / "net" / "stat" / "nf_conntrack", ["insert_failed", "drop"])
    if later is None:
        return first
    return replace(
        first,
        insert_failed_later=later["insert_failed"],
        drop_later=later["drop"],
        sample_seconds=seconds,
    )


def read_neigh(proc_root: Path, sysctls: dict[str, str], entries: int | None) -> NeighStats | None:
    thresh = sysctls.get("net.ipv4.neigh.default.gc_thresh3")
    if thresh is None:
        return None
    if entries is None:
        arp = _read(proc_root / "net" / "arp")
        entries = max(0, len(arp.splitlines()) - 1) if arp else 0
    stats = _stat_columns(proc_root / "net" / "stat" / "arp_cache", ["table_fulls"]) or {}
    # gc_thresh3 bounds one table shared by every namespace; the "entries"
    # column of arp_cache counts all of it (the same on every CPU's row)
    text = _read(proc_root / "net" / "stat" / "arp_cache")
    lines = text.splitlines() if text else []
    if len(lines) > 1 and "entries" in lines[0].split():
        col = lines[0].split().index("entries")
        with contextlib.suppress(ValueError, IndexError):
            entries = max(entries, int(lines[1].split()[col], 16))
    return NeighStats(
        entries=entries, gc_thresh3=int(thresh), table_fulls=stats.get("table_fulls", 0)
    )


DOCKER_EMBEDDED_DNS = "127.0.0.11"


def dns_sockets(proc_net: Path) -> tuple[UdpSocket, ...]:
    """The UDP sockets that serve DNS here: bound on port 53, or on Docker's
    127.0.0.11 (its embedded resolver binds a random port behind a DNAT of
    port 53), with their receive queue and drop count (/proc/net/udp{,6}:
    ``tx_queue:rx_queue`` in hex, ``drops`` last: datagrams the kernel
    dropped since the socket was opened, mostly for a full receive buffer)."""
    found: list[UdpSocket] = []
    for fname, family in (("udp", 4), ("udp6", 6)):
        text = _read(proc_net / fname)
        if not text:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 2 or ":" not in fields[1]:
                continue
            hexaddr, hexport = fields[1].rsplit(":", 1)
            raw = bytes.fromhex(hexaddr)
            if family == 4:
                addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                words = struct.unpack("<4I", raw)
                addr = socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))
            port = int(hexport, 16)
            if port != 53 and addr != DOCKER_EMBEDDED_DNS:
                continue
            try:
                rx_queue = int(fields[4].split(":")[1], 16) if len(fields) > 4 else 0
                drops = int(fields[12]) if len(fields) > 12 else 0
            except (ValueError, IndexError):
                rx_queue, drops = 0, 0
            found.append(UdpSocket(str(ipaddress.ip_address(addr)), port, rx_queue, drops))
    return tuple(found)


def _udp_listeners(proc_net: Path) -> tuple[str, ...]:
    """Local addresses with a UDP socket serving DNS (:func:`dns_sockets`)."""
    return tuple(sorted({s.address for s in dns_sockets(proc_net)}))


def parse_resolv_conf(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(nameservers, options, search domains) as glibc reads them: every
    ``options`` line adds, the last ``search`` or ``domain`` line wins;
    ``#`` and ``;`` start comments."""
    servers: list[str] = []
    options: list[str] = []
    search: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0][0] in "#;":
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            servers.append(values[0])
        elif key == "options":
            options += values
        elif key in ("search", "domain"):
            search = values if key == "search" else values[:1]
    return tuple(servers), tuple(options), tuple(search)


def read_resolver(scope: str, resolv_conf: Path, proc_net: Path) -> ResolverView | None:
    text = _read(resolv_conf)
    if text is None:
        return None
    servers, options, search = parse_resolv_conf(text)
    return ResolverView(
        scope=scope,
        path=str(resolv_conf),
        nameservers=servers,
        loopback_listeners=_udp_listeners(proc_net),
        options=options,
        search=search,
    )


# --- udev ----------------------------------------------------------------


def udev_running(proc_root: Path) -> bool:
    try:
        pids = [p for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return False
    return any(_read(proc_root / pid / "comm") in {"systemd-udevd", "udevd"} for pid in pids)


def _ini(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def read_link_policies(etc_root: Path, lib_root: Path, run_root: Path) -> tuple[LinkPolicy, ...]:
    """systemd ``.link`` files in udev's order (etc over run over lib, then
    by file name); the first one matching bridges is the one udev applies."""
    chosen: dict[str, Path] = {}
    for d in (lib_root / "systemd" / "network", run_root / "systemd" / "network"):
        for p in sorted(d.glob("*.link")) if d.is_dir() else []:
            chosen[p.name] = p
    etc_dir = etc_root / "systemd" / "network"
    for p in sorted(etc_dir.glob("*.link")) if etc_dir.is_dir() else []:
        chosen[p.name] = p
    out = []
    for name in sorted(chosen):
        text = _read(chosen[name])
        if text is None:
            continue
        sections = _ini(text)
        policy = sections.get("Link", {}).get("MACAddressPolicy", "")
        match = sections.get("Match", {})
        types = match.get("Type", "").split()
        matches = (
            not match
            or "bridge" in types
            or (not types and match.get("OriginalName", "").strip() == "*")
        )
        out.append(LinkPolicy(path=str(chosen[name]), policy=policy, matches_bridges=matches))
    return tuple(out)


# --- netlink and firewall (live only) -----------------------------------


def _netlink(sys_root: Path) -> tuple[list[Link], list[Address], list[Route], int]:
    """Links from a raw rtnetlink dump (plus sysfs for the bridges),
    addresses and routes through the host layer, and the IPv4 neighbour count."""
    raw = dump_links()
    names = {r.index: r.name for r in raw}
    bridges = read_sysfs_links(sys_root, [r.name for r in raw if r.kind == "bridge"])
    out_links = []
    for r in raw:
        base = bridges.get(r.name)
        out_links.append(
            Link(
                name=r.name,
                index=r.index,
                mac=r.mac,
                mtu=r.mtu,
                kind=r.kind,
                master=names.get(r.master, "") if r.master else "",
                addr_assign_type=base.addr_assign_type if base else None,
                operstate=r.operstate,
                peer_netnsid=r.netnsid,
                stp_state=base.stp_state if base else 0,
                forward_delay_cs=base.forward_delay_cs if base else 0,
            )
        )
    with Links() as links:
        raw_addrs = links.addresses()
        raw_routes = links.routes()
    addrs = [
        Address(ifname=names.get(a.index, ""), address=a.address, prefixlen=a.prefixlen)
        for a in raw_addrs
    ]
    routes = []
    for route in raw_routes:
        if route.type != 1:  # unicast only
            continue
        dst = route.dst or ("0.0.0.0" if route.family == socket.AF_INET else "::")
        routes.append(
            Route(
                dst=f"{dst}/{route.dst_len}",
                ifname=names.get(route.oif, ""),
                gateway=route.gateway,
                proto=str(route.proto),
            )
        )
    return out_links, addrs, routes, count_neighbours(socket.AF_INET)


def _run(argv: list[str], timeout: float = 10.0) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def read_firewall() -> Firewall:
    """nftables (JSON) and iptables-save (nft and legacy backends)."""
    backends: list[str] = []
    nat, fwd = [], []
    nft = _run(["nft", "-j", "list", "ruleset"])
    if nft is not None:
        backends.append("nftables")
        try:
            n, f = parse_nft_json(json.loads(nft))
        except ValueError:
            n, f = [], []
        nat += n
        fwd += f
    for prog, label in (("iptables-legacy-save", "iptables-legacy"), ("iptables-save", "iptables")):
        text = _run([prog])
        if text and "*" in text:
            n, f = parse_iptables_save(text, label)
            if n or f or text.count("-A "):
                backends.append(label)
            nat += n
            fwd += f
    return Firewall(
        backends=tuple(backends),
        nat_rules=tuple(nat),
        forward_chains=tuple(fwd),
        readable=bool(backends) or nft is not None,
    )


# --- assembling ----------------------------------------------------------


def read_snapshot(
    netns: str = "host",
    roots: Roots | None = None,
    *,
    live: bool = True,
    namespaces: Iterable[str] = (),
    conntrack_sample: float = 0.0,
    query_docker_api: bool = True,
    resolv_conf: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> HostSnapshot:
    """Read the namespace this process is in. ``live=False`` reads only the
    trees under ``roots`` (fixtures); ``namespaces`` adds the resolv.conf
    view of those named namespaces (host mode)."""
    roots = roots or Roots()
    addrs: list[Address] = []
    routes: list[Route] = []
    neigh_entries: int | None = None
    if live:
        link_list, addrs, routes, neigh_entries = _netlink(roots.sys)
    else:
        link_list = list(read_sysfs_links(roots.sys).values())
    names = [link.name for link in link_list if link.kind == "bridge"] + ["default"]
    sysctls = read_sysctls(roots.proc, names)
    conntrack = read_conntrack(roots.proc, sysctls)
    if conntrack is not None and conntrack_sample > 0:
        conntrack = sample_conntrack(roots.proc, conntrack, conntrack_sample, sleep)
    resolvers = []
    conf = resolv_conf or roots.etc / "resolv.conf"
    proc_net = roots.proc / ("thread-self/net" if live else "net")
    own = read_resolver(netns, conf, proc_net)
    if own is not None:
        resolvers.append(own)
    for name in namespaces:
        view = _resolver_of_named(name, roots)
        if view is not None:
            resolvers.append(view)
    inode: int | None = None
    if live:
        try:
            inode = os.stat(roots.proc / "thread-self" / "ns" / "net").st_ino
        except OSError:
            inode = None
    return HostSnapshot(
        netns=netns,
        links=tuple(link_list),
        addresses=tuple(addrs),
        routes=tuple(routes),
        sysctls=sysctls,
        conntrack=conntrack,
        neigh=read_neigh(roots.proc, sysctls, neigh_entries),
        firewall=read_firewall() if live else Firewall(readable=False),
        resolvers=tuple(resolvers),
        docker=tuple(
            d
            for d in list_daemons(
                roots.proc,
                etc_root=None if roots.etc == Path("/etc") else roots.etc,
                query_api=query_docker_api and live,
            )
            if inode is None or d.netns_inode == inode
        ),
        link_policies=read_link_policies(roots.etc, roots.lib, roots.proc.parent / "run"),
        udev_running=udev_running(roots.proc),
        kernel=_read(roots.proc / "sys" / "kernel" / "osrelease") or "",
        dns_sockets=dns_sockets(proc_net),
        peer_namespaces=_peer_namespaces(link_list) if live else {},
    )


def _peer_namespaces(links: list[Link]) -> dict[int, str]:
    """Names of the named namespaces that veth peers live in."""
    wanted = {link.peer_netnsid for link in links if link.peer_netnsid is not None}
    found: dict[int, str] = {}
    for name in list_named() if wanted else []:
        nsid = netns_id(str(netns_path(name)))
        if nsid in wanted:
            found[nsid] = f"netns {name}"
            if len(found) == len(wanted):
                break
    return found


def _resolver_of_named(name: str, roots: Roots) -> ResolverView | None:
    """resolv.conf of a named namespace (its /etc/netns file or the host's)."""
    own = roots.etc / "netns" / name / "resolv.conf"
    conf = own if own.exists() else roots.etc / "resolv.conf"
    try:
        ns = Namespace.named(name, label=f"netns {name}")
    except TargetNotFound:  # gone since it was listed
        return None
    return resolver_in(ns, conf)


def resolver_in(ns: Namespace, resolv_conf: Path) -> ResolverView | None:
    """A resolv.conf and the UDP/53 listeners of ``ns`` (read by a thread
    inside it), scoped by the namespace's label; None if it is gone."""
    try:
        return ns.run(lambda: read_resolver(ns.label, resolv_conf, Path("/proc/thread-self/net")))
    except (OSError, NetsleuthError):
        return None


def read_snapshot_in(
    ns: Namespace,
    *,
    conntrack_sample: float = 0.0,
    resolv_conf: Path | None = None,
    timeout: float = 60.0,
) -> HostSnapshot:
    """Read another namespace (the snapshot is labelled with its label) in a
    worker that enters it for good."""
    snap: HostSnapshot = ns.run_process(
        lambda: read_snapshot(
            ns.label,
            conntrack_sample=conntrack_sample,
            query_docker_api=False,
            resolv_conf=resolv_conf,
        ),
        timeout,
    )
    return snap


def bridge_mac_state(netns: Namespace | str | Path | None, bridge: str) -> Bridge:
    """The :class:`Bridge` (MAC and ``addr_assign_type``) of a bridge in a
    namespace (None: this one): a Namespace, a name, or a path such as
    ``/proc/PID/ns/net``. ``addr_assign_type`` is only in sysfs, so a worker
    that has the namespace's sysfs reads it."""
    ns = Namespace.of(netns)

    def read() -> Bridge:
        d = Path("/sys/class/net") / bridge
        mac, aat = _read(d / "address"), _read(d / "addr_assign_type")
        if mac is None or aat is None:
            raise TargetNotFound(f"no interface {bridge} here; check the name with `ip link`")
        return Bridge(name=bridge, netns=ns.label, mac=mac.lower(), addr_assign_type=int(aat))

    return ns.run_process(read, 10.0)
