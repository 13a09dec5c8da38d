"""DNS over TCP and over IPv6, from real traffic: a client namespace and a
dnsmasq namespace joined by a veth pair, queries over UDP and TCP on IPv4
and IPv6 (several messages in one segment, one message split across two,
a truncated UDP answer retried over TCP), some never answered (the server
routes answers to one client address into a blackhole), a TCP connection
whose SYN is never answered and one refused by RST. `capture` records the
client's side; `explain`'s counts by transport and family must equal
tshark's of the same file."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from netsleuth import netns
from netsleuth.packets.capture import CaptureSpec, capture
from netsleuth.packets.explain import Explanation, explain

pytestmark = pytest.mark.netns

S4, C4, DEAF4, CLOSED4 = "198.18.110.1", "198.18.110.2", "198.18.110.3", "198.18.110.4"
S6, C6, DEAF6 = "2001:2:0:110::1", "2001:2:0:110::2", "2001:2:0:110::3"
NAME, BIG = "a.lab.test", "big.lab.test"
BIG_TXT = ",".join(f'"{c * 200}"' for c in "abcd")  # 800+ bytes: truncated over UDP


@dataclass
class Net:
    client: str
    server: str


def ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True)


@pytest.fixture
def net(make_netns: Callable[..., Path]) -> Iterator[Net]:
    if shutil.which("dnsmasq") is None or shutil.which("tshark") is None:
        pytest.skip("needs dnsmasq and tshark")
    c, s = make_netns("tcpdns-c").name, make_netns("tcpdns-s").name
    ip(c, "link", "add", "vc", "type", "veth", "peer", "name", "vs", "netns", s)
    for ns, dev, addrs in (
        (c, "vc", [f"{C4}/24", f"{DEAF4}/24", f"{C6}/64", f"{DEAF6}/64"]),
        (s, "vs", [f"{S4}/24", f"{CLOSED4}/24", f"{S6}/64"]),
    ):
        for a in addrs:
            ip(ns, "addr", "add", a, "dev", dev, *(["nodad"] if ":" in a else []))
        ip(ns, "link", "set", dev, "up")
        ip(ns, "link", "set", "lo", "up")
    # answers to the deaf addresses never leave the server
    ip(s, "route", "add", "blackhole", f"{DEAF4}/32")
    ip(s, "-6", "route", "add", "blackhole", f"{DEAF6}/128")
    argv = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={S4}",
        f"--listen-address={S6}",
        f"--address=/{NAME}/198.18.5.5",
        f"--txt-record={BIG},{BIG_TXT}",
        "--pid-file",
        "--user=root",
        "--cache-size=0",
        "--log-facility=/dev/null",
    ]
    proc = subprocess.Popen(
        netns.exec_argv(s, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_answering(c)
        yield Net(c, s)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def in_ns(ns: str, func: Callable[[], object]) -> object:
    return netns.run_in(netns.netns_path(ns), func)


def wait_answering(ns: str) -> None:
    def probe() -> bool:
        q = dns.message.make_query(NAME, "A")
        for _ in range(50):  # bounded: 5 s
            try:
                dns.query.udp(q, S4, timeout=0.1, source=C4)
                dns.query.udp(q, S6, timeout=0.1, source=C6)
                return True
            except (TimeoutError, OSError, dns.exception.Timeout):
                time.sleep(0.1)
        return False

    assert in_ns(ns, probe), "dnsmasq did not answer within 5 s"


def framed(*messages: dns.message.Message) -> bytes:
    return b"".join(struct.pack("!H", len(w)) + w for w in (m.to_wire() for m in messages))


def recv_messages(sock: socket.socket, n: int) -> int:
    """Read ``n`` length-prefixed messages (bounded by the socket timeout)."""
    got = 0
    buf = b""
    while got < n:
        chunk = sock.recv(65535)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack_from("!H", buf)[0]:
            buf = buf[2 + struct.unpack_from("!H", buf)[0] :]
            got += 1
    return got


def traffic() -> dict[str, int]:
    """Runs in the client namespace; returns what it sent, by kind."""
    sent: Counter[str] = Counter()
    for server, client, deaf, fam in ((S4, C4, DEAF4, "4"), (S6, C6, DEAF6, "6")):
        af = socket.AF_INET6 if fam == "6" else socket.AF_INET
        for _ in range(5):
            dns.query.udp(dns.message.make_query(NAME, "A"), server, timeout=2, source=client)
            sent[f"udp{fam} answered"] += 1
        for _ in range(3):  # answers routed into the blackhole
            with socket.socket(af, socket.SOCK_DGRAM) as s:
                s.bind((deaf, 0))
                s.sendto(dns.message.make_query(NAME, "A").to_wire(), (server, 53))
            sent[f"udp{fam} unanswered"] += 1
        # one connection: three queries in one segment, then one split across two
        with socket.socket(af, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.bind((client, 0))
            s.connect((server, 53))
            s.sendall(framed(*(dns.message.make_query(NAME, "A") for _ in range(3))))
            assert recv_messages(s, 3) == 3
            wire = framed(dns.message.make_query(NAME, "A"))
            s.sendall(wire[:9])
            time.sleep(0.05)
            s.sendall(wire[9:])
            assert recv_messages(s, 1) == 1
        sent[f"tcp{fam} answered"] += 4
        # a truncated UDP answer, retried over TCP (dnspython does as a stub resolver)
        _msg, used_tcp = dns.query.udp_with_fallback(
            dns.message.make_query(BIG, "TXT"), server, timeout=3, source=client
        )
        assert used_tcp
        sent[f"udp{fam} answered"] += 1
        sent[f"tcp{fam} answered"] += 1
        # a query over TCP whose SYN is never answered (the SYN-ACK goes into the blackhole)
        with socket.socket(af, socket.SOCK_STREAM) as s:
            s.settimeout(1.5)  # the SYN is sent again after 1 s: the same connection
            s.bind((deaf, 0))
            with pytest.raises(OSError):
                s.connect((server, 53))
        sent[f"tcp{fam} handshake unanswered"] += 1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # nothing listens: RST
        s.settimeout(2)
        s.bind((C4, 0))
        with pytest.raises(ConnectionRefusedError):
            s.connect((CLOSED4, 53))
    sent["tcp4 handshake refused"] += 1
    return dict(sent)


def tshark_counts(path: Path) -> dict[str, Counter[str]]:
    """Per transport/family: DNS queries, and those tshark pairs with a response."""
    proc = subprocess.run(
        [
            "tshark",
            "-n",
            "-2",  # two passes: a query's dns.response_in is known only then
            "-r",
            str(path),
            "-Y",
            "dns",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "ip.version",
            "-e",
            "ipv6.version",
            "-e",
            "tcp.stream",
            "-e",
            "dns.flags.response",
            "-e",
            "dns.response_in",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out: dict[str, Counter[str]] = {}
    for line in proc.stdout.splitlines():
        _v4, v6, stream, responses, response_in = line.split(";")
        kind = f"{'tcp' if stream else 'udp'}/{'ipv6' if v6 else 'ipv4'}"
        counts = out.setdefault(kind, Counter())
        for flag in responses.split(","):  # one value per DNS message in the frame
            if flag in ("0", "False"):
                counts["queries"] += 1
        counts["answered"] += len([x for x in response_in.split(",") if x])
    return out


def explain_counts(result: Explanation) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for kind, verdicts in (result.by_transport or {}).items():
        counts = out.setdefault(kind, Counter())
        counts["queries"] = sum(verdicts.values())
        counts["answered"] = verdicts.get("answered", 0)
    return out


def test_explain_counts_dns_over_tcp_and_ipv6_as_tshark_does(net: Net, tmp_path: Path) -> None:
    out = tmp_path / "c.pcapng"
    stop, ready = threading.Event(), threading.Event()
    box: dict[str, object] = {}

    def run() -> None:
        box["result"] = capture(
            [CaptureSpec(net.client, "vc", "client")], out, duration=60, stop=stop, ready=ready
        )

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ready.wait(10)
        sent = in_ns(net.client, traffic)
        time.sleep(0.3)  # the last frames reach the socket
    finally:
        stop.set()
        thread.join(30)
    assert isinstance(sent, dict)
    result = explain([out], keep="all")
    ours = explain_counts(result)
    theirs = tshark_counts(out)
    print(sent, ours, theirs, result.stats)
    # the DNS messages: the same counts as tshark, by transport and family
    for kind in ("udp/ipv4", "udp/ipv6", "tcp/ipv4", "tcp/ipv6"):
        assert ours[kind] == theirs[kind], kind
        tr, fam = kind.split("/")
        answered = sent.get(f"{tr}{fam[-1]} answered", 0)
        unanswered = sent.get(f"{tr}{fam[-1]} unanswered", 0)
        assert ours[kind]["queries"] == answered + unanswered, kind
        assert ours[kind]["answered"] == answered, kind
    # connections that carried no query: one per SYN never answered, and the refused one
    hs4 = result.by_transport["tcp-handshake/ipv4"] if result.by_transport else {}
    hs6 = result.by_transport["tcp-handshake/ipv6"] if result.by_transport else {}
    assert hs4["unanswered"] == 1 and hs4["answered"] == 1
    assert hs6["unanswered"] == 1 and sum(hs6.values()) == 1
    refused = [j for j in result.journeys if j.handshake and j.verdict.value == "answered"]
    assert [j.rcode for j in refused] == [5]
    unanswered_syn = [j for j in result.journeys if j.handshake and j.verdict.failed]
    assert all(len([h for h in j.hops if not h.response]) == 1 for j in unanswered_syn)
    assert result.stats.tcp_retransmitted >= 2  # the SYNs sent again, counted once
    # the truncated answer is marked, and its retry is over TCP
    big = [j for j in result.journeys if j.qname == f"{BIG}."]
    assert sorted((j.transport, j.family, j.truncated) for j in big) == [
        ("tcp", "ipv4", False),
        ("tcp", "ipv6", False),
        ("udp", "ipv4", True),
        ("udp", "ipv6", True),
    ]
