"""The passive DNS source of ``watch --passive``: capture rings on the
bridges (and the uplinks) of the host namespace, the matcher, the naming of
clients, and the results handed to the engine.

:class:`PassiveSource` opens one :class:`~netsleuth.passive.ring.PacketRing`
per interface in the namespace holding the bridges (client sides
promiscuous, see :mod:`netsleuth.passive.ring`), then one thread it owns
polls them all: every block handed over is copied out of the ring and
parsed (:func:`~netsleuth.passive.wire.parse_block`) and fed to the
:class:`~netsleuth.passive.matcher.Matcher` — client sides first, then the
uplinks — and every outcome closed becomes a :class:`ProbeResult`: target
the client (:class:`~netsleuth.passive.names.ClientNamer`), probe
``passive:dns/TYPE`` (``/tcp`` over TCP), server the server address,
outcome OK / NXDOMAIN / SERVFAIL / REFUSED from the rcode as a probe's,
TIMEOUT when unanswered, latency as seen on the bridge, and as answer how
far an unanswered query went (``never-left``, ``no-answer-upstream``,
``not-delivered``, ``late``). The engine collects them with :meth:`take`
and delivers them like probe results. Queries still open when the source
stops are left out: their outcome is not known.

:func:`choose_sides` (pure) decides what is watched.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from netsleuth.errors import InvalidArgument
from netsleuth.model import Outcome, ProbeResult
from netsleuth.passive import PASSIVE_PREFIX
from netsleuth.passive.matcher import Closed, Fate, Matcher
from netsleuth.passive.names import ClientNamer
from netsleuth.passive.ring import PacketRing
from netsleuth.passive.wire import TCP, Frames, address_text, parse_block, qtype_text

__all__ = [
    "PASSIVE_PREFIX",
    "PassiveSource",
    "Side",
    "choose_sides",
    "outcome_of",
    "probe_text",
]

_RCODES = {0: Outcome.OK, 2: Outcome.SERVFAIL, 3: Outcome.NXDOMAIN, 5: Outcome.REFUSED}
_OUTCOMES = {-1: Outcome.TIMEOUT, **_RCODES}  # outcome_of as one look-up


@dataclass(frozen=True, slots=True)
class Side:
    """An interface watched: ``client`` (queries there open outcomes) or
    ``uplink`` (sightings after NAT, for how far a query went)."""

    ifname: str
    role: Literal["client", "uplink"]


def choose_sides(
    given: Sequence[str],
    path_bridges: Sequence[str],
    bridges: Sequence[str],
    uplinks: Sequence[str],
) -> tuple[Side, ...]:
    """What to watch: the interfaces ``given`` (after ``--passive``), else the
    bridges the targets' paths use, else every bridge of the host namespace;
    plus every uplink not among them."""
    clients = list(dict.fromkeys(given or path_bridges or bridges))
    if not clients:
        raise InvalidArgument(
            "--passive found no bridge in the host namespace; name the interfaces to watch "
            "(--passive BRIDGE ...) or the namespace holding them (--host-netns NAME)"
        )
    return (
        *(Side(name, "client") for name in clients),
        *(Side(name, "uplink") for name in uplinks if name not in clients),
    )


def outcome_of(rcode: int) -> Outcome:
    """A closed query's outcome: its rcode as a DNS probe reads it, TIMEOUT
    when unanswered (rcode -1)."""
    if rcode < 0:
        return Outcome.TIMEOUT
    return _RCODES.get(rcode, Outcome.BAD_ANSWER)


def probe_text(qtype: int, proto: int) -> str:
    """``passive:dns/TYPE``, ``/tcp`` added over TCP: one series per client,
    server and query type, never per name."""
    text = f"{PASSIVE_PREFIX}dns/{qtype_text(qtype)}"
    return f"{text}/tcp" if proto == TCP else text


class PassiveSource:
    """Rings, matcher and naming, run by a thread it owns (see the module
    docstring). ``start`` opens every ring (raising what stops it: an
    interface that does not exist); ``stop`` joins the thread and closes them."""

    def __init__(
        self,
        sides: Sequence[Side],
        netns_path: str | Path | None,
        *,
        timeout_s: float,
        namer: ClientNamer,
        promisc: bool = True,
        poll_ms: int = 50,
        ring_blocks: int = 32,
    ) -> None:
        self.sides = tuple(sides)
        self.netns_path = netns_path
        self.matcher = Matcher(int(timeout_s * 1e9))
        self.namer = namer
        self.promisc = promisc
        self.poll_ms = poll_ms
        self.ring_blocks = ring_blocks
        self.rings: list[PacketRing] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._out: list[ProbeResult] = []
        self._probes: dict[int, str] = {}  # qtype << 8 | proto -> probe text
        self._servers: dict[bytes, str] = {}

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> PassiveSource:
        try:
            for side in self.sides:
                self.rings.append(
                    PacketRing.open(
                        side.ifname,
                        self.netns_path,
                        block_nr=self.ring_blocks,
                        promisc=self.promisc and side.role == "client",
                    )
                )
        except BaseException:
            self._close_rings()
            raise
        self._thread = threading.Thread(target=self._run, name="passive-dns", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close_rings()

    def _close_rings(self) -> None:
        for ring in self.rings:
            ring.close()

    # -- results --------------------------------------------------------------------
    def take(self) -> list[ProbeResult]:
        """The results closed since the last call (thread-safe)."""
        with self._lock:
            out, self._out = self._out, []
        return out

    def summary(self) -> dict[str, object]:
        """What was watched and seen: per interface frames and kernel drops,
        the matcher's counts (for the store's ``passive`` fact)."""
        return {
            "interfaces": [
                {
                    "ifname": side.ifname,
                    "role": side.role,
                    "frames": ring.stats.frames,
                    "kernel_drops": ring.stats.drops,
                }
                for side, ring in zip(self.sides, self.rings, strict=False)
            ],
            "open_at_end": len(self.matcher),
            **self.matcher.stats.to_json(),
            **({"error": self.error} if self.error else {}),
        }

    @property
    def status(self) -> str:
        """One line for the end of ``watch``."""
        s = self.matcher.stats
        drops = sum(r.stats.drops for r in self.rings)
        names = ", ".join(side.ifname for side in self.sides if side.role == "client")
        line = (
            f"passive DNS on {names}: {s.queries} real queries, {s.unanswered} unanswered"
            f"{f', {drops} frames dropped by the kernel (ring full)' if drops else ''}"
        )
        return f"{line}; stopped: {self.error}" if self.error else line

    # -- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        poller = select.poll()
        for ring in self.rings:
            poller.register(ring.fileno(), select.POLLIN | select.POLLERR)
        # client sides first: a query's uplink sighting must not come before it
        sides = [
            (
                ring,
                self.matcher.client_frames if side.role == "client" else self.matcher.uplink_frames,
            )
            for side, ring in sorted(
                zip(self.sides, self.rings, strict=True), key=lambda pair: pair[0].role != "client"
            )
        ]
        last_drops = 0.0
        try:
            while not self._stop.is_set():
                poller.poll(self.poll_ms)
                for ring, feed in sides:
                    _drain(ring, feed)
                # a frame is handed over at the latest ``retire_ms`` after it was seen
                self.matcher.expire(time.time_ns() - 100_000_000)
                self._publish()
                now = time.monotonic()
                if now - last_drops > 1.0:
                    for ring, _feed in sides:
                        ring.drops()
                    last_drops = now
            for ring, feed in sides:
                _drain(ring, feed)
            self._publish()
        except Exception as exc:  # noqa: BLE001 - kept for the status line; the watch goes on
            self.error = f"{type(exc).__name__}: {exc}"

    def _publish(self) -> None:
        closed = self.matcher.take()
        if not closed:
            return
        results = self._results(closed, time.time_ns() - time.monotonic_ns())
        with self._lock:
            self._out.extend(results)

    def _results(self, closed: list[Closed], offset: int) -> list[ProbeResult]:
        """The results of outcomes closed in one turn of the thread: per query
        the client's label (cached by the namer), two cached texts and the
        result itself."""
        out: list[ProbeResult] = []
        append, label = out.append, self.namer.label
        probes, servers, outcomes, answered = self._probes, self._servers, _OUTCOMES, Fate.ANSWERED
        for c in closed:
            probe = probes.get(c.qtype << 8 | c.proto)
            if probe is None:
                probe = probes[c.qtype << 8 | c.proto] = probe_text(c.qtype, c.proto)
            server = servers.get(c.server)
            if server is None:
                server = servers[c.server] = address_text(c.server)
            append(
                ProbeResult(
                    c.ts_ns,
                    c.ts_ns - offset,
                    label(c.client),
                    probe,
                    server,
                    outcomes.get(c.rcode, Outcome.BAD_ANSWER),
                    c.latency_ns,
                    "" if c.fate is answered else c.fate.label,
                )
            )
        return out


def _drain(ring: PacketRing, feed: Callable[[Frames], None]) -> int:
    """Parse every frame of every block handed over and feed them, a block
    at a time; frames read."""
    n = 0
    for block, first, count in ring.blocks():
        feed(parse_block(block, first, count))
        n += count
    return n
