"""Match every DNS query seen on the wire with its answer: pure logic, no I/O.

The :class:`Matcher` is fed parsed frames (:data:`netsleuth.passive.wire.Dns`)
with their capture timestamp and the side they were seen on:

- **client side** (a bridge, or any interface given to watch clients on): a
  query opens an outcome keyed by (protocol, client address and port, server
  address and port, DNS id, question name) — :data:`~netsleuth.passive.wire.Key`,
  which the parser already builds in the client's orientation. The answer
  with the same key closes it: answered, with its rcode and the
  latency between the two sightings. Nothing within ``timeout_ns`` (the
  watch timeout, the same a stub resolver waits): unanswered.
- **uplink** (the host's way out): the same query seen again after NAT has
  another source address (and often port), so it is found by DNS id and
  name among the open queries of the last ``nat_window_ns``, as
  :mod:`netsleuth.packets.journey` does. An uplink sighting never opens or
  closes an outcome — what counts is what the client got back — it only
  records how far the query went: it left by the uplink, and an answer came
  back there. So an unanswered query is told apart as *never left the
  host*, *left, no answer upstream*, or *answered upstream, never delivered
  to the client* (:class:`Fate`).

Retransmissions: a query with the same key while the first one is open (a
resolver that retries with the same id from the same socket) is the same
lookup and counted once; its latency runs from the first send. A stub
resolver reports one result for it, and counting each copy would turn one
slow answer into several failures. After the first one was closed (answered
or timed out) the same key opens a new outcome: it is a new attempt.

Answers are decided by timestamps, not by when a frame is read: an answer
later than ``timeout_ns`` after its query is unanswered (late), however soon
it was read. :meth:`Matcher.expire` closes the queries whose time is up as
of the given capture time.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # it comes with mypy, which compiles this module; plain Python needs none
    _C = TypeVar("_C")

    def mypyc_attr(*_args: str, **_kwargs: bool) -> Callable[[_C], _C]:  # type: ignore[misc]
        return lambda cls: cls


from netsleuth.passive.wire import Dns, Frames, Key

__all__ = ["Closed", "Fate", "Matcher", "MatcherStats"]


class Fate(enum.IntEnum):
    """How far an unanswered query went (from the uplink's sightings)."""

    ANSWERED = 0
    NEVER_LEFT = 1
    """Seen on the client side, never on the uplink: lost in the host (a
    stale gateway MAC, a firewall, no route) — or no uplink was watched."""
    NO_ANSWER_UPSTREAM = 2
    """Left by the uplink; no answer came back there."""
    NOT_DELIVERED = 3
    """Answered on the uplink; the answer never reached the client side."""
    LATE = 4
    """Answered on the client side, but after the timeout."""

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


_RCODE_TIMEOUT: Final = -1  # rcode of an outcome with no answer in time
# the members, bound once: a class attribute look-up of an enum is slow per query
_ANSWERED: Final = Fate.ANSWERED
_NEVER_LEFT: Final = Fate.NEVER_LEFT
_NO_ANSWER_UPSTREAM: Final = Fate.NO_ANSWER_UPSTREAM
_NOT_DELIVERED: Final = Fate.NOT_DELIVERED
_LATE: Final = Fate.LATE


@mypyc_attr(acyclic=True)
class Closed:
    """One closed outcome: a real query and what became of it. ``rcode`` is
    -1 for an unanswered one; ``latency_ns`` is None then. Read-only by
    convention. A plain class, not a dataclass: one is made per query, and
    mypyc builds a plain class natively, a dataclass through the ``__init__``
    the decorator generates at import. Compiled, neither this nor an open
    query is tracked by the garbage collector (``acyclic``: they hold only
    bytes, ints and an enum member): with one of each per query, the
    collector's passes over them were a third of the matcher's time."""

    __slots__ = (
        "client",
        "client_port",
        "copies",
        "fate",
        "latency_ns",
        "proto",
        "qname",
        "qtype",
        "rcode",
        "server",
        "server_port",
        "ts_ns",
    )

    def __init__(  # noqa: PLR0917 - the fields, in order
        self,
        ts_ns: int,
        proto: int,
        client: bytes,
        client_port: int,
        server: bytes,
        server_port: int,
        qname: bytes,
        qtype: int,
        rcode: int,
        latency_ns: int | None,
        fate: Fate,
        copies: int = 1,
    ) -> None:
        self.ts_ns = ts_ns
        self.proto = proto
        self.client = client
        self.client_port = client_port
        self.server = server
        self.server_port = server_port
        self.qname = qname
        self.qtype = qtype
        self.rcode = rcode
        self.latency_ns = latency_ns
        self.fate = fate
        self.copies = copies
        # copies: times the client sent it (retransmissions while it was open count here)

    def __repr__(self) -> str:
        return (
            f"Closed(ts_ns={self.ts_ns}, client={self.client!r}:{self.client_port}, "
            f"server={self.server!r}:{self.server_port}, qname={self.qname!r}, "
            f"qtype={self.qtype}, rcode={self.rcode}, latency_ns={self.latency_ns}, "
            f"fate={self.fate.label}, copies={self.copies})"
        )


@dataclass(slots=True)
class MatcherStats:
    queries: int = 0
    answered: int = 0
    unanswered: int = 0
    retransmissions: int = 0
    stray_answers: int = 0
    """Answers on the client side to no open query (its query was not seen,
    or it came after the query was closed)."""
    uplink_queries: int = 0
    uplink_matched: int = 0
    """Uplink queries that were an open client query after NAT."""
    by_fate: dict[Fate, int] = field(default_factory=dict)

    @property
    def fates(self) -> dict[str, int]:
        """Closed outcomes per fate, by label."""
        return {fate.label: n for fate, n in sorted(self.by_fate.items())}

    def to_json(self) -> dict[str, object]:
        return {
            "queries": self.queries,
            "answered": self.answered,
            "unanswered": self.unanswered,
            "retransmissions": self.retransmissions,
            "stray_answers": self.stray_answers,
            "uplink_queries": self.uplink_queries,
            "uplink_matched": self.uplink_matched,
            "fates": self.fates,
        }


ById = bytes
"""The DNS id and question name of a key (its third part): how a query is
found again after NAT."""


@mypyc_attr(acyclic=True)
class _Open:
    """A query waiting for its answer."""

    __slots__ = ("copies", "key", "left", "qtype", "ts", "upstream")

    def __init__(self, ts: int, key: Key, qtype: int) -> None:
        self.ts = ts
        self.key = key
        self.qtype = qtype
        self.left = False  # seen on the uplink
        self.upstream = False  # answered on the uplink
        self.copies = 1


class Matcher:
    """Open queries and their closing; see the module docstring."""

    def __init__(self, timeout_ns: int, nat_window_ns: int | None = None) -> None:
        self.timeout_ns = timeout_ns
        self.nat_window_ns = timeout_ns if nat_window_ns is None else nat_window_ns
        self.stats = MatcherStats()
        self.closed: list[Closed] = []
        self._open: dict[Key, _Open] = {}
        self._order: deque[_Open] = deque()  # by time sent: all share one timeout
        self._by_id: dict[ById, _Open] = {}  # (id, qname) -> the latest open
        self._early: dict[ById, tuple[int, bool]] = {}  # seen on the uplink first
        self._early_order: deque[tuple[int, ById]] = deque()

    def __len__(self) -> int:
        return len(self._open)

    def client_frames(self, frames: Frames) -> None:
        """Frames seen where the clients are, in capture order (a block's)."""
        stamps, fields, keys = frames
        for i in range(len(keys)):
            self._client(stamps[i], keys[i], fields[i])

    def uplink_frames(self, frames: Frames) -> None:
        """Frames seen on the host's way out, in capture order."""
        stamps, fields, keys = frames
        for i in range(len(keys)):
            self._uplink(stamps[i], keys[i], fields[i] & 1 == 1)

    def client_side(self, d: Dns) -> None:
        """A frame seen where the clients are (a bridge)."""
        ts, is_answer, key, qtype, rcode = d
        self._client(ts, key, qtype << 8 | rcode << 1 | int(is_answer))

    def uplink(self, d: Dns) -> None:
        """A frame seen on the host's way out."""
        self._uplink(d[0], d[2], d[1])

    def _client(self, ts: int, key: Key, packed: int) -> None:
        open_ = self._open
        if not packed & 1:  # a query
            entry = open_.get(key)
            if entry is not None:
                entry.copies += 1
                self.stats.retransmissions += 1
                return
            entry = _Open(ts, key, packed >> 8)
            open_[key] = entry
            self._order.append(entry)
            byid = key[2]
            self._by_id[byid] = entry
            self.stats.queries += 1
            if self._early:
                early = self._early.pop(byid, None)
                if early is not None and 0 <= early[0] - ts <= self.nat_window_ns:
                    entry.left, entry.upstream = True, early[1]
                    self.stats.uplink_matched += 1
            return
        entry = open_.pop(key, None)
        if entry is None:
            self.stats.stray_answers += 1
            return
        latency = ts - entry.ts
        if latency > self.timeout_ns:
            self._close(entry, _RCODE_TIMEOUT, None, _LATE)
        else:
            self._close(entry, packed >> 1 & 0x0F, max(latency, 0), _ANSWERED)
        byid = key[2]
        if self._by_id.get(byid) is entry:
            del self._by_id[byid]

    def _uplink(self, ts: int, key: Key, is_answer: bool) -> None:
        byid = key[2]
        entry = self._by_id.get(byid)
        if not is_answer:
            self.stats.uplink_queries += 1
        if entry is None or not 0 <= ts - entry.ts <= self.nat_window_ns:
            # not (yet) seen on the client side: its client-side frame may be
            # read after this one (another socket), so keep it for a while
            if not is_answer:
                if len(self._early) >= 65536:  # bounded: the host's own lookups end up here
                    self._early.clear()
                    self._early_order.clear()
                self._early[byid] = (ts, False)
                self._early_order.append((ts, byid))
            elif byid in self._early:
                self._early[byid] = (self._early[byid][0], True)
            return
        if is_answer:
            entry.upstream = True
        else:
            if not entry.left:
                self.stats.uplink_matched += 1
            entry.left = True

    def expire(self, now_ns: int) -> None:
        """Close every query older than the timeout as of capture time ``now_ns``."""
        limit = now_ns - self.timeout_ns
        order, open_ = self._order, self._open
        while order and order[0].ts < limit:
            entry = order.popleft()
            if open_.get(entry.key) is not entry:
                continue  # answered already
            del open_[entry.key]
            if entry.upstream:
                fate = _NOT_DELIVERED
            elif entry.left:
                fate = _NO_ANSWER_UPSTREAM
            else:
                fate = _NEVER_LEFT
            self._close(entry, _RCODE_TIMEOUT, None, fate)
            byid = entry.key[2]
            if self._by_id.get(byid) is entry:
                del self._by_id[byid]
        early, early_order = self._early, self._early_order
        while early_order and early_order[0][0] < limit:
            ts, byid = early_order.popleft()
            seen = early.get(byid)
            if seen is not None and seen[0] == ts:
                del early[byid]

    def _close(self, entry: _Open, rcode: int, latency: int | None, fate: Fate) -> None:
        addrs, ports, idname = entry.key
        half = len(addrs) // 2
        self.closed.append(
            Closed(
                entry.ts,
                ports >> 32,
                addrs[:half],
                ports >> 16 & 0xFFFF,
                addrs[half:],
                ports & 0xFFFF,
                idname[2:],
                entry.qtype,
                rcode,
                latency,
                fate,
                entry.copies,
            )
        )
        stats = self.stats
        if latency is None:
            stats.unanswered += 1
        else:
            stats.answered += 1
        by_fate = stats.by_fate
        by_fate[fate] = by_fate.get(fate, 0) + 1

    def take(self) -> list[Closed]:
        """The outcomes closed since the last call."""
        out, self.closed = self.closed, []
        return out
