"""Faults of load: the host's DNS query rate, not a broken path, makes queries fail.

Both faults share :class:`QueryBursts`, a "build" namespace on the lab
bridge (``nsl-ID-b0``, removed on exit) that sends bursts of DNS queries
for a few seconds every few seconds, like CI jobs that each resolve dozens
of names (and, with ``ndots:5``, five queries per name) when they start.
Its queries leave from a few fixed sockets, so they add a handful of
conntrack entries, not thousands.

``upstream-rate-limit`` (:class:`UpstreamRateLimit`): the lab's resolver
admits only :data:`LIMIT_PPS` DNS packets per second (an nftables ``limit
rate over`` drop rule in its namespace; every query of the host arrives
from the one NAT address, like the per-interface limit of a cloud
resolver). Probes alone stay under it; during a burst the resolver drops
the share above the limit from everyone, the host itself too.

``resolver-overload`` (:class:`ResolverOverload`): a forwarding cache in
the lab's host namespace on the bridge address (:class:`SlowForwarder`, the
node-local cache or libvirt's dnsmasq of a real host) that the probes ask.
It handles one query at a time, :data:`FORWARD_COST_S` each (a CPU-starved
cache), with a small receive buffer; during a burst its socket's buffer
fills and the kernel drops what arrives (``Udp RcvbufErrors``, drop reason
``SOCKET_RCVBUFF``), the probes' queries among them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import select
import socket
import struct
import time
from dataclasses import dataclass
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from netsleuth import netns
from netsleuth.errors import NetsleuthError
from netsleuth.lab.background import BackgroundLoop
from netsleuth.lab.topology import LAB_PREFIX, LabTopology, add_bridge_peer, nft_apply
from netsleuth.netns import Namespace

__all__ = [
    "FORWARD_COST_S",
    "LIMIT_PPS",
    "BurstPlan",
    "QueryBursts",
    "ResolverOverload",
    "SlowForwarder",
    "UpstreamRateLimit",
    "burst_windows",
    "rate_limit_ruleset",
]

LIMIT_TABLE = "netsleuth_ratelimit"

LIMIT_PPS = 200
"""DNS packets per second the lab's resolver admits (a cloud resolver's
per-interface limit, 1024/s on AWS, scaled to the lab)."""

FORWARD_COST_S = 0.002
"""Seconds the slow forwarder spends on each query (about 500 queries/s)."""

FORWARD_RCVBUF = 4096
"""SO_RCVBUF of the slow forwarder's socket (the kernel doubles it): a few
dozen queries."""

BUILDER_MAC = "fe:ff:ff:ff:ff:01"
"""The build port's MAC: larger than any other, so the bridge never takes it."""

BUILDER_SOCKETS = 4
SEND_TICK_S = 0.01


@dataclass(frozen=True, slots=True)
class BurstPlan:
    """When and how hard the builds query: ``rate`` queries/s for
    ``length`` seconds every ``period`` seconds (give or take ``jitter``),
    the first ``first`` seconds after the start."""

    rate: float
    length: float
    period: float
    first: float = 2.0
    jitter: float = 0.5


def burst_windows(plan: BurstPlan, duration: float, seed: int) -> list[tuple[float, float]]:
    """The bursts' (start, end) seconds from the start, within ``duration`` (pure)."""
    rng = random.Random(f"{seed}:bursts")
    out: list[tuple[float, float]] = []
    start = plan.first
    for _ in range(10_000):  # bounded: a burst every period
        if start >= duration:
            break
        out.append((start, min(duration, start + plan.length)))
        start += plan.period + rng.uniform(-plan.jitter, plan.jitter)
    return out


def _query_wire(name: str) -> bytes:
    return dns.message.make_query(name, dns.rdatatype.A).to_wire()


def _builder_address(topo: LabTopology, index: int) -> str:
    """An address near the top of the lab subnet (containers count from the bottom)."""
    net = ipaddress.ip_network(topo.subnet)
    return str(net[-2 - index])


class QueryBursts(BackgroundLoop):
    """A build namespace on the lab bridge that sends DNS bursts to ``server``.

    Entering creates the namespace and its port (the bridge's MAC does not
    change: the port's MAC is the largest there is), opens
    :data:`BUILDER_SOCKETS` sockets in it, and starts the thread; leaving
    stops the thread and removes the namespace. ``sent``/``answered`` count
    the queries.
    """

    name = "lab-query-bursts"

    def __init__(
        self, topo: LabTopology, server: str, plan: BurstPlan, duration: float, seed: int
    ) -> None:
        self.topo = topo
        self.server = server
        self.plan = plan
        self.duration = duration
        self.windows = burst_windows(plan, duration, seed)
        self.ns_name = f"{LAB_PREFIX}{topo.run_id}-b0"
        self.port = "vb0"
        self.sent = 0
        self.answered = 0
        self.error: BaseException | None = None
        self._socks: list[socket.socket] = []
        self._wire = _query_wire(f"pkg.{topo.dns_name.partition('.')[2] or topo.dns_name}")
        super().__init__()

    def start(self) -> None:
        try:
            self._build()
        except BaseException:
            self._teardown()
            raise
        super().start()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self._teardown()

    def _build(self) -> None:
        topo = self.topo
        address = _builder_address(topo, 0)
        builder = add_bridge_peer(topo, self.ns_name, self.port, BUILDER_MAC, address)

        def sockets() -> list[socket.socket]:
            out = []
            for _ in range(BUILDER_SOCKETS):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setblocking(False)
                s.connect((self.server, 53))
                out.append(s)
            return out

        self._socks = builder.run(sockets)

    def _teardown(self) -> None:
        for s in self._socks:
            s.close()
        self._socks = []
        netns.remove_owned(self.ns_name)  # its port on the bridge goes with it

    def _drain(self) -> None:
        for s in self._socks:
            for _ in range(1000):  # bounded: what arrived since the last tick
                try:
                    s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # ICMP errors of a connected socket
                    break
                self.answered += 1

    def _send(self, count: int, qid: int) -> int:
        wire = bytearray(self._wire)
        for i in range(count):
            qid = (qid + 1) & 0xFFFF
            struct.pack_into("!H", wire, 0, qid)
            try:
                self._socks[i % len(self._socks)].send(wire)
                self.sent += 1
            except (BlockingIOError, OSError):
                pass  # a full send buffer: the build's own loss
        return qid

    def _run(self) -> None:
        started = time.monotonic()
        qid = random.Random(self.ns_name).randrange(1 << 16)
        try:
            for start, end in self.windows:
                if self._stop.wait(max(0.0, started + start - time.monotonic())):
                    return
                due = 0.0
                tick_at = time.monotonic()
                while time.monotonic() < started + end and not self._stop.is_set():
                    due += self.plan.rate * SEND_TICK_S
                    qid = self._send(int(due), qid)
                    due -= int(due)
                    self._drain()
                    tick_at += SEND_TICK_S
                    self._stop.wait(max(0.0, tick_at - time.monotonic()))
                self._drain()
        except OSError as exc:  # the lab is torn down under us
            self.error = exc


def rate_limit_ruleset(pps: int) -> str:
    """nftables JSON: drop DNS packets (UDP and TCP port 53) above ``pps`` per second."""
    rules: list[dict[str, object]] = [
        {"add": {"table": {"family": "ip", "name": LIMIT_TABLE}}},
        {
            "add": {
                "chain": {
                    "family": "ip",
                    "table": LIMIT_TABLE,
                    "name": "input",
                    "type": "filter",
                    "hook": "input",
                    "prio": 0,
                    "policy": "accept",
                }
            }
        },
    ]
    for proto in ("udp", "tcp"):
        rules.append(
            {
                "add": {
                    "rule": {
                        "family": "ip",
                        "table": LIMIT_TABLE,
                        "chain": "input",
                        "comment": "netsleuth lab: the resolver's query rate limit",
                        "expr": [
                            {
                                "match": {
                                    "op": "==",
                                    "left": {"payload": {"protocol": proto, "field": "dport"}},
                                    "right": 53,
                                }
                            },
                            {
                                "limit": {
                                    "rate": pps,
                                    "per": "second",
                                    "burst": max(1, pps // 10),
                                    "inv": True,
                                }
                            },
                            {"drop": None},
                        ],
                    }
                }
            }
        )
    return json.dumps({"nftables": rules})


RATE_LIMIT_BURSTS = BurstPlan(rate=800.0, length=3.0, period=8.0)
"""Four times the limit for 3 s every ~8 s."""

OVERLOAD_BURSTS = BurstPlan(rate=1500.0, length=2.0, period=6.0)
"""Three times what the slow forwarder handles, for 2 s every ~6 s."""


class UpstreamRateLimit:
    """The resolver admits :data:`LIMIT_PPS` DNS packets/s; builds burst above it."""

    def __init__(self, topo: LabTopology, seed: int, duration: float) -> None:
        self.topo = topo
        self.bursts = QueryBursts(topo, topo.dns_server, RATE_LIMIT_BURSTS, duration, seed)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> UpstreamRateLimit:
        nft_apply(self.topo.upstream_ns, rate_limit_ruleset(LIMIT_PPS))
        self._stack.enter_context(self.bursts)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()  # the rule goes with the upstream namespace


class SlowForwarder(BackgroundLoop):
    """A forwarding DNS cache in the lab's host namespace, on ``listen``:53.

    One query at a time: receive, spend ``cost`` seconds, forward it to
    ``upstream`` under an id of its own, and relay answers back. Its socket
    has a receive buffer of ``rcvbuf`` bytes; what arrives while that is full
    the kernel drops and counts (``Udp RcvbufErrors``).
    """

    name = "lab-slow-forwarder"

    def __init__(
        self,
        host_ns: str,
        listen: str,
        upstream: str,
        *,
        cost: float = FORWARD_COST_S,
        rcvbuf: int = FORWARD_RCVBUF,
    ) -> None:
        self.host_ns = host_ns
        self.listen = listen
        self.upstream = upstream
        self.cost = cost
        self.rcvbuf = rcvbuf
        self.forwarded = 0
        self.relayed = 0
        self.error: BaseException | None = None
        self._pending: dict[int, tuple[tuple[str, int], bytes, float]] = {}
        self._next_id = 1
        self._server: socket.socket | None = None
        self._up: socket.socket | None = None
        super().__init__()

    def _open(self) -> tuple[socket.socket, socket.socket]:
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        server.bind((self.listen, 53))
        server.setblocking(False)
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        up.connect((self.upstream, 53))
        up.setblocking(False)
        return server, up

    def start(self) -> None:
        self._server, self._up = Namespace.named(self.host_ns).run(self._open)
        super().start()

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            for s in (self._server, self._up):
                if s is not None:
                    s.close()
            self._server = self._up = None

    def _relay(self, server: socket.socket, up: socket.socket) -> None:
        for _ in range(256):  # bounded: the answers that arrived
            try:
                answer = up.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(answer) < 2:
                continue
            (qid,) = struct.unpack_from("!H", answer)
            entry = self._pending.pop(qid, None)
            if entry is None:
                continue
            client, client_id, _ = entry
            with contextlib.suppress(OSError):
                server.sendto(client_id + answer[2:], client)
                self.relayed += 1

    def _forward(self, server: socket.socket, up: socket.socket) -> None:
        try:
            query, client = server.recvfrom(4096)
        except (BlockingIOError, InterruptedError):
            return
        if len(query) < 12:
            return
        time.sleep(self.cost)  # the work of a slow cache, one query at a time
        now = time.monotonic()
        if len(self._pending) > 4096:  # forget answers that never came
            self._pending = {k: v for k, v in self._pending.items() if now - v[2] < 2.0}
        qid = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFF or 1
        self._pending[qid] = (client, query[:2], now)
        with contextlib.suppress(OSError):
            up.send(struct.pack("!H", qid) + query[2:])
            self.forwarded += 1

    def _run(self) -> None:
        server, up = self._server, self._up
        assert server is not None and up is not None
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([server, up], [], [], 0.1)
                if up in ready:
                    self._relay(server, up)
                if server in ready:
                    self._forward(server, up)
        except (OSError, ValueError) as exc:  # closed under us at teardown
            self.error = exc


def _check_answers(host_ns: str, server: str, name: str) -> None:
    """One answer from ``server`` in the host namespace, or a one-line error."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    for _ in range(5):
        try:
            Namespace.named(host_ns).run(lambda: dns.query.udp(query, server, timeout=0.5))
            return
        except (dns.exception.DNSException, OSError):
            time.sleep(0.1)
    raise NetsleuthError(f"the lab's local resolver on {server} did not answer")


class ResolverOverload:
    """A slow local forwarder the probes use, and builds that overflow it."""

    def __init__(self, topo: LabTopology, seed: int, duration: float) -> None:
        self.topo = topo
        self.forwarder = SlowForwarder(topo.host_ns, topo.gateway, topo.dns_server)
        self.bursts = QueryBursts(topo, topo.gateway, OVERLOAD_BURSTS, duration, seed)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ResolverOverload:
        try:
            self._stack.enter_context(self.forwarder)
            _check_answers(self.topo.host_ns, self.topo.gateway, self.topo.dns_name)
            self._stack.enter_context(self.bursts)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
