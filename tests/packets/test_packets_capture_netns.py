"""The capture engine on real interfaces: two namespaces of our own joined by
a veth pair, a DNS-like UDP exchange plus traffic the filter must drop."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import pytest
from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.cli import main
from netsleuth.errors import TargetNotFound
from netsleuth.packets.capture import CaptureResult, CaptureSpec, capture
from netsleuth.packets.explain import explain
from netsleuth.packets.model import ArpPacket, DnsPacket
from netsleuth.packets.reader import read_captures

pytestmark = pytest.mark.netns

A_ADDR, B_ADDR = "198.18.100.1", "198.18.100.2"
IFF_PROMISC = 0x100


@pytest.fixture
def pair(make_netns: Callable[..., Path]) -> Iterator[tuple[str, str]]:
    """Namespaces a and b, ``va`` in a (198.18.100.1) and ``vb`` in b (.2)."""
    a, b = make_netns("cap-a").name, make_netns("cap-b").name
    with IPRoute(netns=a) as ipr:
        ipr.link("add", ifname="va", kind="veth", peer={"ifname": "vb", "net_ns_fd": b})
        idx = ipr.link_lookup(ifname="va")[0]
        ipr.addr("add", index=idx, address=A_ADDR, prefixlen=24)
        ipr.link("set", index=idx, state="up")
    with IPRoute(netns=b) as ipr:
        idx = ipr.link_lookup(ifname="vb")[0]
        ipr.addr("add", index=idx, address=B_ADDR, prefixlen=24)
        ipr.link("set", index=idx, state="up")
    yield a, b


def exchange(a: str, b: str, queries: int) -> None:
    """``queries`` DNS queries a→b:53 answered by a tiny server in b, plus UDP to
    another port and a refused TCP connection, which the filter must drop."""
    server = netns.run_in(
        netns.netns_path(b), lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    server.bind((B_ADDR, 53))
    server.settimeout(2)
    client = netns.run_in(
        netns.netns_path(a), lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    )
    client.settimeout(2)
    try:
        for i in range(queries):
            query = dns.message.make_query(f"q{i}.lab.test", "A")
            client.sendto(query.to_wire(), (B_ADDR, 53))
            data, peer = server.recvfrom(2048)
            reply = dns.message.make_response(dns.message.from_wire(data))
            server.sendto(reply.to_wire(), peer)
            client.recvfrom(2048)
            client.sendto(b"not dns", (B_ADDR, 9999))
        tcp = netns.run_in(
            netns.netns_path(a), lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        )
        tcp.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            tcp.connect((B_ADDR, 80))
        tcp.close()
    finally:
        client.close()
        server.close()


def run_capture(
    specs: list[CaptureSpec], out: Path, **kw: object
) -> tuple[threading.Thread, threading.Event, dict[str, CaptureResult]]:
    stop, ready = threading.Event(), threading.Event()
    box: dict[str, CaptureResult] = {}

    def body() -> None:
        box["result"] = capture(specs, out, stop=stop, ready=ready, **kw)  # type: ignore[arg-type]

    thread = threading.Thread(target=body)
    thread.start()
    assert ready.wait(10), "capture did not start"
    return thread, stop, box


def test_capture_both_ends_only_dns_and_arp(pair: tuple[str, str], tmp_path: Path) -> None:
    a, b = pair
    out = tmp_path / "pair.pcapng"
    specs = [CaptureSpec(a, "va", "client"), CaptureSpec(b, "vb", "uplink")]
    thread, stop, box = run_capture(specs, out, duration=30)
    with IPRoute(netns=a) as ipr:  # the capture must not make the interface promiscuous
        flags = ipr.get_links(ipr.link_lookup(ifname="va")[0])[0]["flags"]
    assert not flags & IFF_PROMISC
    exchange(a, b, 20)
    time.sleep(0.2)
    stop.set()
    thread.join(10)
    result = box["result"]
    assert [c.frames > 0 for c in result.interfaces] == [True, True]
    packets, reader = read_captures([out])
    assert reader.stats.other == 0  # UDP 9999 and TCP 80 were filtered out in the kernel
    assert [(i.name, i.netns, i.role) for i in reader.interfaces] == [
        ("va", a, "client"),
        ("vb", b, "uplink"),
    ]
    dns_pkts = [p for p in packets if isinstance(p, DnsPacket)]
    assert len(dns_pkts) == 80  # 20 queries + 20 answers, each seen on both ends
    assert any(isinstance(p, ArpPacket) for p in packets)
    stamps = [p.ts_ns for p in dns_pkts]
    assert abs(stamps[0] - time.time_ns()) < 60e9  # kernel wall-clock stamps
    e = explain([out], keep="all")
    assert e.counts["answered"] == 20
    assert e.journeys_total == 20
    assert all(len(j.hops) == 4 for j in e.journeys)
    if shutil.which("tshark"):
        n = subprocess.run(
            ["tshark", "-n", "-r", str(out), "-Y", "dns"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.count("\n")
        assert n == 80


def test_count_bound_and_cli(
    pair: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = pair
    out = tmp_path / "cli.pcapng"

    def traffic() -> None:  # the CLI runs in the main thread (it installs signal handlers)
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the sockets are bound once the file exists
        exchange(a, b, 10)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        code = main(
            ["capture", "--iface", f"{a}:va", "--count", "6", "--duration", "20", "-w", str(out)]
        )
    finally:
        thread.join(25)
    assert code == 0
    assert "wrote 6 frames" in capsys.readouterr().out
    _packets, reader = read_captures([out])
    assert reader.stats.frames == 6


def test_interface_going_down_and_up_does_not_end_the_capture(
    pair: tuple[str, str], tmp_path: Path
) -> None:
    a, b = pair
    out = tmp_path / "flap.pcapng"
    thread, stop, box = run_capture([CaptureSpec(a, "va", "client")], out, duration=30)
    exchange(a, b, 3)
    with IPRoute(netns=a) as ipr:
        idx = ipr.link_lookup(ifname="va")[0]
        ipr.link("set", index=idx, state="down")
        time.sleep(0.3)
        ipr.link("set", index=idx, state="up")
    time.sleep(0.5)
    exchange(a, b, 3)
    time.sleep(0.2)
    stop.set()
    thread.join(10)
    [count] = box["result"].interfaces
    assert count.went_down >= 1
    _packets, reader = read_captures([out])
    assert reader.stats.dns == 12  # 6 queries + 6 answers, before and after the flap


def test_missing_interface_and_namespace(pair: tuple[str, str], tmp_path: Path) -> None:
    a, _b = pair
    with pytest.raises(TargetNotFound, match="does not exist in namespace"):
        capture([CaptureSpec(a, "nope0")], tmp_path / "x.pcapng", duration=1)
    with pytest.raises(TargetNotFound, match="network namespace"):
        capture([CaptureSpec("nslt-missing-ns", "eth0")], tmp_path / "x.pcapng", duration=1)
