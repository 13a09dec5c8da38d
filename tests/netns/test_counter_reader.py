"""The kernel counter reader: the /proc tables parsed (pure, from recorded
text), then :class:`CounterReader` on real namespaces — a UDP datagram to a
closed port, an nft drop and a frame for another MAC each raise the counter
the kernel keeps for it, reads work from any thread without ``setns``, and a
deleted namespace raises instead of being read (and kept alive) forever."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netsleuth import netns
from netsleuth.netns import Namespace
from netsleuth.netns.counters import (
    ARP_COUNTERS,
    CT_COUNTERS,
    LINK_COUNTERS,
    SNMP_COUNTERS,
    CounterReader,
    parse_snmp,
    parse_stat_table,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "audit" / "reference-host" / "proc" / "net"

SNMP_TEXT = """\
Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos \
InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout
Ip: 1 64 17571 0 3 0 0 4 17571 13555 5 6 0
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs OutMsgs OutDestUnreachs
Icmp: 650 0 0 2 648 7
IcmpMsg: InType0 OutType8
IcmpMsg: 324 324
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
Udp: 100 11 12 90 13 14 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors
UdpLite: 0 99 99 0 99 99 0
"""

NETSTAT_TEXT = """\
TcpExt: SyncookiesSent EmbryonicRsts IPReversePathFilter TCPTimeouts
TcpExt: 0 1 21 22
IpExt: InNoRoutes InTruncatedPkts
IpExt: 98 97
"""


# -- parsing (pure) -------------------------------------------------------------


def test_conntrack_table_sums_cpus_and_renames_clashres() -> None:
    text = (FIXTURES / "stat" / "nf_conntrack").read_text()
    got = parse_stat_table(text, CT_COUNTERS, "ct")
    # The recorded table: CPU 0 saw 0x21 insert failures and 3 drops, CPU 1 none.
    assert got["ct.insert_failed"] == 0x21
    assert got["ct.drop"] == 3
    assert got["ct.clash_resolve"] == 0  # the kernel's "clashres" column
    assert got["ct.entries"] == 0
    assert set(got) == {f"ct.{k}" for k in CT_COUNTERS} | {"ct.entries"}


def test_arp_table_sums_counts_and_takes_entries_once() -> None:
    text = (FIXTURES / "stat" / "arp_cache").read_text()
    got = parse_stat_table(text, ARP_COUNTERS, "arp")
    assert got["arp.table_fulls"] == 2 + 1
    assert got["arp.entries"] == 3  # the same on every row: not summed
    assert got["arp.unresolved_discards"] == 0
    assert set(got) == {f"arp.{k}" for k in ARP_COUNTERS} | {"arp.entries"}


def test_stat_table_hex_rows_and_short_rows() -> None:
    text = "entries  drop insert_failed other\n0000000a 0000000f 00000010 ff\n0000000a 00000001\n"
    got = parse_stat_table(text, ("drop", "insert_failed", "absent"), "ct")
    # A truncated row (fewer cells than the header) is skipped, not misread.
    assert got == {"ct.drop": 15, "ct.insert_failed": 16, "ct.entries": 10}


def test_snmp_pairs_keep_only_what_is_asked() -> None:
    keep = frozenset(SNMP_COUNTERS)
    got = parse_snmp(SNMP_TEXT, "snmp", keep)
    assert got == {
        "snmp.Ip.InAddrErrors": 3,
        "snmp.Ip.InDiscards": 4,
        "snmp.Ip.OutDiscards": 5,
        "snmp.Ip.OutNoRoutes": 6,
        "snmp.Icmp.InDestUnreachs": 2,
        "snmp.Icmp.OutDestUnreachs": 7,
        "snmp.Udp.NoPorts": 11,
        "snmp.Udp.InErrors": 12,
        "snmp.Udp.RcvbufErrors": 13,
        "snmp.Udp.SndbufErrors": 14,
    }  # UdpLite's columns have the same names but another group: not taken


def test_netstat_pairs_are_named_by_their_file() -> None:
    keep = frozenset(SNMP_COUNTERS)
    got = parse_snmp(NETSTAT_TEXT, "netstat", keep)
    assert got == {
        "netstat.TcpExt.IPReversePathFilter": 21,
        "netstat.TcpExt.TCPTimeouts": 22,
        "netstat.IpExt.InNoRoutes": 98,  # the kernel keeps it here, not in snmp's Ip
    }
    assert parse_snmp(NETSTAT_TEXT, "snmp", keep) == {}  # same lines, other file: nothing


# -- real namespaces ------------------------------------------------------------


@pytest.fixture
def make_ns() -> Iterator[Callable[[str], tuple[str, Path]]]:
    """Owned namespaces ``nsl-ct<random>-LABEL`` with lo up; removed afterwards."""
    tag = secrets.token_hex(3)
    created: list[str] = []

    def make(label: str) -> tuple[str, Path]:
        name = f"nsl-ct{tag}-{label}"
        path = netns.create_owned(name)
        created.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name, path

    yield make
    for name in created:
        netns.remove_owned(name)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def send_udp(ns: Namespace, dst: str, port: int, count: int) -> int:
    """Send ``count`` one-byte datagrams from inside ``ns``; how many failed."""

    def body() -> int:
        failed = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(count):
                try:
                    s.sendto(b"x", (dst, port))
                except OSError:
                    failed += 1
        return failed

    return ns.run(body)


def rose(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def settle(reader: CounterReader, want: Callable[[dict[str, int]], bool]) -> dict[str, int]:
    """Read until ``want`` holds (counters are bumped synchronously, but an
    ICMP error or a frame crossing a veth is handled in softirq): <= 2 s."""
    values = reader.read()
    for _ in range(40):
        if want(values):
            break
        time.sleep(0.05)
        values = reader.read()
    return values


@pytest.mark.netns
def test_every_kept_snmp_name_exists_in_a_namespace(
    make_ns: Callable[[str], tuple[str, Path]],
) -> None:
    """The names are the kernel's: a typo in the tuple would read nothing."""
    name, path = make_ns("names")
    with CounterReader(Namespace(path, name, name)) as reader:
        values = reader.read()
    assert set(SNMP_COUNTERS) <= set(values)
    assert {f"link.lo.{k}" for k in LINK_COUNTERS} <= set(values)
    assert not any(k.startswith("link.") and not k.startswith("link.lo.") for k in values)


@pytest.mark.netns
def test_udp_to_a_closed_port_raises_noports(make_ns: Callable[[str], tuple[str, Path]]) -> None:
    name, path = make_ns("noports")
    ns = Namespace(path, name, name)
    with CounterReader(ns) as reader:
        before = reader.read()
        assert send_udp(ns, "127.0.0.1", 9, 5) == 0
        after = settle(reader, lambda v: v["snmp.Udp.NoPorts"] - before["snmp.Udp.NoPorts"] >= 5)
    delta = rose(before, after)
    assert delta["snmp.Udp.NoPorts"] == 5
    assert delta.get("snmp.Icmp.OutDestUnreachs", 0) >= 1  # the port unreachable it answered


@pytest.mark.netns
def test_an_nft_drop_raises_ip_out_discards(make_ns: Callable[[str], tuple[str, Path]]) -> None:
    """A datagram dropped by an output rule fails with EPERM and is counted as
    an IP output discard in that namespace (and only there)."""
    name, path = make_ns("nft")
    other_name, other_path = make_ns("quiet")
    ruleset = (
        "table ip nsltest {\n chain out {\n  type filter hook output priority 0; policy accept;\n"
        "  udp dport 7777 drop\n }\n}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", name, "nft", "-f", "-"], input=ruleset, text=True, check=True
    )
    ns = Namespace(path, name, name)
    with (
        CounterReader(ns) as reader,
        CounterReader(Namespace(other_path, other_name, other_name)) as other,
    ):
        before, other_before = reader.read(), other.read()
        assert send_udp(ns, "127.0.0.1", 7777, 4) == 4  # every send refused by the rule
        after = reader.read()
        assert rose(other_before, other.read()) == {}
    delta = rose(before, after)
    assert delta["snmp.Ip.OutDiscards"] == 4
    assert "snmp.Udp.NoPorts" not in delta  # nothing left the namespace's output


@pytest.mark.netns
def test_a_frame_for_another_mac_raises_rx_otherhost_dropped(
    make_ns: Callable[[str], tuple[str, Path]],
) -> None:
    """The stale-gateway mechanism: frames sent to a MAC the receiver no
    longer has are dropped on its link and counted there."""
    a, a_path = make_ns("a")
    b, b_path = make_ns("b")
    ip("-n", a, "link", "add", "vna", "type", "veth", "peer", "name", "vnb", "netns", b)
    ip("-n", a, "addr", "add", "198.18.77.1/30", "dev", "vna")
    ip("-n", b, "addr", "add", "198.18.77.2/30", "dev", "vnb")
    ip("-n", a, "link", "set", "vna", "up")
    ip("-n", b, "link", "set", "vnb", "up")
    ip("-n", a, "neigh", "replace", "198.18.77.2", "lladdr", "02:00:5e:00:00:99",
       "dev", "vna", "nud", "permanent")  # fmt: skip
    with CounterReader(Namespace(b_path, b, b)) as reader:
        before = reader.read()
        assert send_udp(Namespace(a_path, a, a), "198.18.77.2", 9, 6) == 0
        key = "link.vnb.rx_otherhost_dropped"
        after = settle(reader, lambda v: v[key] - before[key] >= 6)
    delta = rose(before, after)
    assert delta[key] == 6
    assert "snmp.Udp.NoPorts" not in delta  # never reached UDP


@pytest.mark.netns
def test_reads_from_another_thread_see_the_namespace_without_setns(
    make_ns: Callable[[str], tuple[str, Path]],
) -> None:
    name, path = make_ns("thread")
    ns = Namespace(path, name, name)
    ip("-n", name, "link", "add", "nsl-br0", "type", "bridge")
    mine = os.readlink("/proc/thread-self/ns/net")
    with CounterReader(ns) as reader:
        before = reader.read()
        send_udp(ns, "127.0.0.1", 9, 3)
        seen: dict[str, object] = {}

        def read_elsewhere() -> None:
            seen["values"] = settle(
                reader, lambda v: v["snmp.Udp.NoPorts"] - before["snmp.Udp.NoPorts"] >= 3
            )
            seen["netns"] = os.readlink("/proc/thread-self/ns/net")

        t = threading.Thread(target=read_elsewhere)
        t.start()
        t.join(timeout=10)
    values = seen["values"]
    assert isinstance(values, dict)
    assert seen["netns"] == mine  # the thread never left our namespace
    assert values["snmp.Udp.NoPorts"] - before["snmp.Udp.NoPorts"] == 3
    links = {k.split(".")[1] for k in values if k.startswith("link.")}
    assert links == {"lo", "nsl-br0"}  # its links, not ours


@pytest.mark.netns
def test_a_deleted_namespace_raises_and_is_freed_once_closed(
    make_ns: Callable[[str], tuple[str, Path]],
) -> None:
    """The reader's files hold the namespace: after ``ip netns del`` it must
    not go on reading it (the namespace, and its veth, would never go)."""
    a, a_path = make_ns("gone")
    b, _ = make_ns("peer")
    ip("-n", a, "link", "add", "vga", "type", "veth", "peer", "name", "vgb", "netns", b)
    reader = CounterReader(Namespace(a_path, a, a))
    try:
        reader.read()
        netns.remove_owned(a)
        with pytest.raises(OSError):
            reader.read()
        assert link_exists(b, "vgb")  # still held by the open reader
    finally:
        reader.close()
    assert wait_gone(b, "vgb"), "the namespace was not freed after close()"


def link_exists(ns: str, link: str) -> bool:
    return (
        subprocess.run(
            ["ip", "-n", ns, "link", "show", link], capture_output=True, check=False
        ).returncode
        == 0
    )


def wait_gone(ns: str, link: str, timeout: float = 10.0) -> bool:
    """Namespaces are torn down by a kernel worker: poll for the peer to go."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not link_exists(ns, link):
            return True
        time.sleep(0.1)
    return False
