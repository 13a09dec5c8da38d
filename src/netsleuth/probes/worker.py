"""The probe worker: one process per target.

It enters the target's network namespace for good (the parent never changes
namespace), expands server-less DNS probes from the target's own
resolv.conf, and runs every probe on its fixed schedule in one epoll loop:
a fresh non-blocking socket per attempt, every datagram drained when ready,
timeouts kept in send order. It speaks :mod:`.protocol` with the parent:
a :class:`~.protocol.WorkerConfig` in, :class:`~.protocol.Ready`, then
:class:`~.protocol.Results` batches (at least every 50 ms), and
:class:`~.protocol.Done` or :class:`~.protocol.Failed` out; it stops on
:class:`~.protocol.Stop`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import heapq
import os
import random
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import dns.message
import dns.rdatatype

from netsleuth.model import Outcome
from netsleuth.probes.protocol import (
    Done,
    Failed,
    ProbeSlot,
    ProtocolError,
    Ready,
    ResultRow,
    Results,
    Stop,
    WorkerConfig,
    WorkerStats,
)
from netsleuth.probes.schedule import Schedule
from netsleuth.probes.spec import ProbeSpec, expand_dns_servers, parse_probe

__all__ = ["spawn_worker", "start_worker", "worker_main"]

PR_SET_PDEATHSIG = 1
FLUSH_NS = 50_000_000  # results reach the parent at least every 50 ms
MAX_BURST = 256  # sends per loop pass before answers are drained again
LATE_NS = 10_000_000  # an attempt sent this long after its slot counts as late

_OK, _TIMEOUT, _REFUSED = Outcome.OK, Outcome.TIMEOUT, Outcome.REFUSED
_NXDOMAIN, _SERVFAIL = Outcome.NXDOMAIN, Outcome.SERVFAIL
_UNREACH, _ERROR, _BAD = Outcome.UNREACHABLE, Outcome.ERROR, Outcome.BAD_ANSWER
_RCODE_OUTCOME = {0: _OK, 2: _SERVFAIL, 3: _NXDOMAIN, 5: _REFUSED}
_UNREACH_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENONET}


def _errno_outcome(exc: OSError) -> Outcome:
    code: int = exc.errno or 0
    if code == errno.ECONNREFUSED:
        return _REFUSED
    if code in _UNREACH_ERRNOS:
        return _UNREACH
    return _ERROR


class _Probe:
    """One expanded probe: its spec, schedule and per-kind send logic."""

    __slots__ = ("address", "bufsize", "index", "kind", "schedule", "sent", "spec", "tail")

    def __init__(self, index: int, spec: ProbeSpec, schedule: Schedule) -> None:
        self.index = index
        self.spec = spec
        self.kind = spec.kind
        self.schedule = schedule
        self.sent = 0
        self.address = (spec.server, spec.port or 53)
        self.tail = b""  # the query after its 2-byte id
        self.bufsize = max(4096, spec.edns)  # an answer fits whole (UDP truncates the rest)
        if spec.kind == "dns":
            rdtype = dns.rdatatype.from_text(spec.rdtype)
            if spec.edns:
                query = dns.message.make_query(spec.name, rdtype, use_edns=0, payload=spec.edns)
            else:
                query = dns.message.make_query(spec.name, rdtype)
            self.tail = query.to_wire()[2:]


def _icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class _Loop:
    def __init__(self, cfg: WorkerConfig, conn: Connection, probes: list[_Probe]) -> None:
        self.cfg = cfg
        self.conn = conn
        self.probes = probes
        self.timeout_ns = int(cfg.timeout * 1e9)
        self.ep = select.epoll()
        # fd -> (socket, probe, token, send mono_ns)
        self.inflight: dict[int, tuple[socket.socket, _Probe, int, int]] = {}
        self.deadlines: deque[tuple[int, int, socket.socket]] = deque()
        self.results: list[ResultRow] = []
        self.answers: dict[bytes, tuple[Outcome, str]] = {}
        self.rng = random.Random(cfg.seed)
        self.wall_offset = time.time_ns() - time.monotonic_ns()
        self.max_lag_ns = 0
        self.late = 0
        self.stopping = False
        # Every attempt in flight holds a socket: stay below the fd limit.
        self.max_inflight = max(64, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 256)
        self.resolver: ThreadPoolExecutor | None = None
        self.resolved: deque[tuple[_Probe, int, Outcome, int | None, str]] = deque()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ep.register(self.wake_r, select.EPOLLIN)
        self.ep.register(conn.fileno(), select.EPOLLIN)

    # -- sending -------------------------------------------------------------
    def fire(self, probe: _Probe, due_ns: int) -> None:
        now = time.monotonic_ns()
        lag = now - due_ns
        self.max_lag_ns = max(self.max_lag_ns, lag)
        if lag > LATE_NS:
            self.late += 1
        probe.sent += 1
        kind = probe.kind
        if kind == "dns":
            self._send_dns(probe, now)
        elif kind == "tcp":
            self._send_tcp(probe, now)
        elif kind == "icmp":
            self._send_icmp(probe, now)
        else:
            self._send_resolve(probe, now)

    def _track(self, sock: socket.socket, probe: _Probe, token: int, now: int, ev: int) -> None:
        fd = sock.fileno()
        self.ep.register(fd, ev)
        self.inflight[fd] = (sock, probe, token, now)
        self.deadlines.append((now + self.timeout_ns, fd, sock))

    def _send_dns(self, probe: _Probe, now: int) -> None:
        # The hot path: one socket per query (a fresh source port, as a resolver
        # library does), connected so ICMP errors come back as refused/unreachable.
        qid = self.rng.getrandbits(16)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            sock.connect(probe.address)
            sock.send(qid.to_bytes(2, "big") + probe.tail)
        except OSError as exc:
            sock.close()
            self.record(probe, now, _errno_outcome(exc), None, "")
            return
        fd = sock.fileno()
        self.ep.register(fd, select.EPOLLIN)
        self.inflight[fd] = (sock, probe, qid, now)
        self.deadlines.append((now + self.timeout_ns, fd, sock))

    def _send_tcp(self, probe: _Probe, now: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        rc = sock.connect_ex((probe.spec.server, probe.spec.port))
        if rc not in (0, errno.EINPROGRESS):
            sock.close()
            self.record(probe, now, _errno_outcome(OSError(rc, "")), None, "")
            return
        self._track(sock, probe, 0, now, select.EPOLLOUT)

    def _send_icmp(self, probe: _Probe, now: int) -> None:
        ident = self.rng.getrandbits(16)
        seq = probe.sent & 0xFFFF
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        payload = b"netsleuth"
        packet = struct.pack("!BBHHH", 8, 0, _icmp_checksum(header + payload), ident, seq)
        try:
            sock = socket.socket(
                socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, socket.IPPROTO_ICMP
            )
            sock.sendto(packet + payload, (probe.spec.server, 0))
        except OSError as exc:
            self.record(probe, now, _errno_outcome(exc), None, "")
            return
        self._track(sock, probe, (ident << 16) | seq, now, select.EPOLLIN)

    def _send_resolve(self, probe: _Probe, now: int) -> None:
        if self.resolver is None:
            self.resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")
        future = self.resolver.submit(
            socket.getaddrinfo, probe.spec.name, None, socket.AF_INET, socket.SOCK_STREAM
        )
        future.add_done_callback(lambda f: self._resolved(f, probe, now))

    def _resolved(self, future: Future[Any], probe: _Probe, sent: int) -> None:
        done = time.monotonic_ns()
        item: tuple[_Probe, int, Outcome, int | None, str]
        try:
            infos = future.result()
            answer = " ".join(sorted({str(i[4][0]) for i in infos}))
            item = (probe, sent, _OK, done - sent, answer)
        except socket.gaierror as exc:
            outcome = {socket.EAI_NONAME: _NXDOMAIN, socket.EAI_AGAIN: _TIMEOUT}.get(
                exc.errno or 0, _ERROR
            )
            item = (probe, sent, outcome, None, "")
        self.resolved.append(item)
        os.write(self.wake_w, b"x")

    # -- receiving -------------------------------------------------------------
    def record(
        self, probe: _Probe, sent: int, outcome: Outcome, latency: int | None, answer: str
    ) -> None:
        self.results.append((probe.index, sent + self.wall_offset, sent, outcome, latency, answer))

    def _close(self, fd: int, sock: socket.socket) -> None:
        del self.inflight[fd]
        sock.close()  # closing the only reference also removes it from the epoll set

    def on_ready(self, fd: int) -> None:
        entry = self.inflight.get(fd)
        if entry is None:
            return
        sock, probe, token, sent = entry
        now = time.monotonic_ns()
        kind = probe.kind
        try:
            if kind == "dns":
                data = sock.recv(probe.bufsize)
                if len(data) < 12 or (data[0] << 8 | data[1]) != token:
                    return  # not ours; keep waiting for the real answer
                outcome, answer = self._dns_answer(data)
            elif kind == "tcp":
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                outcome = _OK if err == 0 else _errno_outcome(OSError(err, ""))
                answer = ""
            else:
                if not self._icmp_matches(sock, token):
                    return
                outcome, answer = _OK, ""
        except BlockingIOError:
            return
        except OSError as exc:
            outcome, answer = _errno_outcome(exc), ""
        self._close(fd, sock)
        self.record(probe, sent, outcome, now - sent if outcome is _OK else None, answer)

    def _dns_answer(self, data: bytes) -> tuple[Outcome, str]:
        key = data[2:]
        cached = self.answers.get(key)
        if cached is None:
            rcode = data[3] & 0x0F
            outcome = _RCODE_OUTCOME.get(rcode, _BAD)
            try:
                msg = dns.message.from_wire(data)
                answer = " ".join(sorted(rd.to_text() for rrset in msg.answer for rd in rrset))
            except Exception:  # noqa: BLE001 - any unparsable answer is a bad answer
                outcome, answer = _BAD, ""
            cached = (outcome, answer)
            if len(self.answers) < 4096:
                self.answers[key] = cached
        return cached

    @staticmethod
    def _icmp_matches(sock: socket.socket, token: int) -> bool:
        while True:
            packet = sock.recv(2048)  # raises BlockingIOError when drained
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) < ihl + 8:
                continue
            kind, _, _, ident, seq = struct.unpack_from("!BBHHH", packet, ihl)
            if kind == 0 and (ident << 16) | seq == token:
                return True

    def expire(self, now: int) -> None:
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, fd, sock = deadlines.popleft()
            entry = self.inflight.get(fd)
            if entry is not None and entry[0] is sock:
                source = _source(sock) if entry[1].kind in ("dns", "tcp") else ""
                self._close(fd, sock)
                self.record(entry[1], entry[3], _TIMEOUT, None, source)

    def flush(self) -> None:
        while self.resolved:
            probe, sent, outcome, latency, answer = self.resolved.popleft()
            self.record(probe, sent, outcome, latency, answer)
        if self.results:
            self.conn.send(Results.of(self.results))
            self.results = []

    # -- main loop -------------------------------------------------------------
    def run(self) -> WorkerStats:
        start = time.monotonic_ns() + 1_000_000
        heap: list[tuple[int, int]] = []
        for p in self.probes:
            heapq.heappush(heap, (p.schedule.next_due(), p.index))
        by_index = {p.index: p for p in self.probes}
        limit = self.cfg.count
        next_flush = start + FLUSH_NS
        mono = time.monotonic_ns
        poll = self.ep.poll
        conn_fd = self.conn.fileno()
        while True:
            now = mono()
            burst = 0
            while (
                heap
                and heap[0][0] <= now
                and not self.stopping
                and burst < MAX_BURST
                and len(self.inflight) < self.max_inflight
            ):
                burst += 1
                due, idx = heap[0]
                probe = by_index[idx]
                self.fire(probe, due)
                if limit is not None and probe.sent >= limit:
                    heapq.heappop(heap)
                else:
                    heapq.heapreplace(heap, (probe.schedule.next_due(), idx))
            # Read every answer already there before judging anything timed out:
            # when the loop runs late, answers wait in socket buffers.
            self._handle(poll(0), conn_fd)
            now = mono()
            self.expire(now)
            if now >= next_flush:
                self.flush()
                next_flush = now + FLUSH_NS
            if (self.stopping or not heap) and not self.inflight and not self._resolving():
                break
            wake = next_flush
            if heap and not self.stopping and len(self.inflight) < self.max_inflight:
                wake = min(wake, heap[0][0])
            if self.deadlines:
                wake = min(wake, self.deadlines[0][0])
            self._handle(poll(max(0, wake - mono()) / 1e9), conn_fd)
        self.flush()
        if self.resolver is not None:
            self.resolver.shutdown(wait=True)
        return WorkerStats(
            sent=sum(p.sent for p in self.probes), max_lag_ms=self.max_lag_ns / 1e6, late=self.late
        )

    def _handle(self, ready: list[tuple[int, int]], conn_fd: int) -> None:
        for fd, _ in ready:
            if fd == conn_fd:
                if self.conn.poll():
                    message = self.conn.recv()
                    if not isinstance(message, Stop):
                        raise ProtocolError(f"unexpected message from the engine: {message!r:.80}")
                    self.stopping = True
            elif fd == self.wake_r:
                os.read(self.wake_r, 4096)
            else:
                self.on_ready(fd)

    def _resolving(self) -> bool:
        return bool(self.resolved) or (
            self.resolver is not None and self.resolver._work_queue.qsize() > 0
        )


def _source(sock: socket.socket) -> str:
    """``from ADDR:PORT``: the source of an unanswered query or connect, the
    first half of its 5-tuple (a kernel drop of it names the same; see
    :mod:`netsleuth.drops.link`). Read only when it timed out: no cost for
    the attempts that are answered."""
    try:
        addr, port = sock.getsockname()[:2]
    except OSError:
        return ""
    return f"from {addr}:{port}"


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_worker() -> tuple[subprocess.Popen[bytes], Connection]:
    """Start a worker process (``python -m netsleuth.probes FD``) on one end
    of a socketpair; the parent keeps the other end, whose first message must
    be the worker's :class:`WorkerConfig`."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = subprocess.Popen(
        [sys.executable, "-m", "netsleuth.probes", str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        stdin=subprocess.DEVNULL,
    )
    theirs.close()
    return proc, Connection(ours.detach())


def spawn_worker(cfg: WorkerConfig) -> tuple[subprocess.Popen[bytes], Connection]:
    """:func:`start_worker`, handed its config."""
    proc, conn = start_worker()
    conn.send(cfg)
    return proc, conn


def worker_main(conn: Connection) -> None:
    """Body of the worker process: its config comes first over ``conn``."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        cfg = conn.recv()
        if not isinstance(cfg, WorkerConfig):
            raise ProtocolError(f"expected a WorkerConfig first, got {type(cfg).__name__}")
        if cfg.netns_path is not None:
            from netsleuth.netns import enter_for_good

            enter_for_good(cfg.netns_path, cfg.netns_name)
        _raise_fd_limit()
        specs = [parse_probe(t) for t in cfg.probes]
        try:
            # a container's own file lives under /proc/PID/root: the engine says where
            with open(cfg.resolv_conf or "/etc/resolv.conf") as fh:
                resolv = fh.read()
        except OSError:
            resolv = ""
        specs = expand_dns_servers(specs, resolv)
        if not specs:
            conn.send(
                Failed(
                    "no probe to run: the target's resolv.conf lists no IPv4 "
                    "nameserver; give one, e.g. dns:SERVER/NAME"
                )
            )
            return
        start = time.monotonic_ns() + 2_000_000
        rng = random.Random(cfg.seed)
        probes = [
            _Probe(i, s, Schedule(start, cfg.rate, cfg.jitter, rng)) for i, s in enumerate(specs)
        ]
        conn.send(Ready(tuple(ProbeSlot(s.text, s.server) for s in specs)))
        conn.send(Done(_Loop(cfg, conn, probes).run()))
    except (BrokenPipeError, EOFError):
        pass
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        with contextlib.suppress(OSError):
            conn.send(Failed(f"{type(exc).__name__}: {exc}"))
