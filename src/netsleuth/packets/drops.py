"""Which kernel drop was the end of which lost query.

A capture shows where a query was last seen; the kernel's ``skb:kfree_skb``
drops (:mod:`netsleuth.drops`, recorded by ``capture --drops`` into a sidecar
file or by ``watch`` into its store) show where packets died and why. This
module brings the two together. It is pure: the I/O is reading the sidecar
(:func:`read_sidecar`) and the store's events (:func:`drops_from_events`).

Clock. Packet timestamps are wall clock (``SO_TIMESTAMPNS``; pcap files
carry wall time). The tracer stamps drops with CLOCK_MONOTONIC (bpftrace's
``nsecs`` is ``bpf_ktime_get_ns()``, the ftrace instance uses the ``mono``
clock). Both recorders convert with the offset wall − monotonic measured
when they start. NTP slews both clocks alike, so only a step of the wall
clock moves that offset. The sidecar records the offset at the start and at
the end, and the reader warns when they differ.

Matching. The packet of a lost query is the query itself (it never left a
hop: ``never-left-bridge``, ``unanswered``; or it left and was lost further
on: ``nat-unanswered``, ``escaped-nat``) or its answer (``lost-on-return``).
Its 5-tuple is UDP, the client's address and port, the server's address and
port (reversed for an answer). A query the capture saw translated
(``nat_source``) was last seen after the NAT, so its translated tuple is
matched; for an answer both are tried, the one before and the one after
the reverse NAT. A drop with one of these tuples belongs to
the journey whose packet was last seen before it, at most ``tolerance_ns``
after the drop (this covers conversion error) and at most ``window_ns``
before it. The window is long enough for a packet that waited for a
neighbour that never answered (``NEIGH_FAILED``, about 3 s). One resolver
socket sends many queries with the same tuple. Choosing the latest sighting
before the drop gives each drop to the query it came right after, so a
query whose own drop is missing does not take the next one's.

Honesty. "No drop was recorded for it" is said only when the recording ran
at that moment and no drop without addresses (an aggregate under a storm,
or the ftrace fallback) could have been its drop. Otherwise nothing is said
about that query, and the report says once why.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsleuth.errors import InvalidArgument
from netsleuth.model import DropDetail, EventKind, NetEvent, NoteDetail, drop_headers
from netsleuth.packets.model import Fate, Journey

__all__ = [
    "DEFAULT_DROP_TOLERANCE_NS",
    "DEFAULT_DROP_WINDOW_NS",
    "SIDECAR_SUFFIX",
    "DropLog",
    "DropReport",
    "QueryDrop",
    "ReasonCount",
    "RecordedDrop",
    "attribute_drops",
    "drops_from_events",
    "merge_logs",
    "read_sidecar",
    "sidecar_logs",
    "sidecar_path",
]

SIDECAR_SUFFIX = ".drops.jsonl"
SIDECAR_VERSION = 1
DEFAULT_DROP_WINDOW_NS = 4_000_000_000
DEFAULT_DROP_TOLERANCE_NS = 5_000_000
_AGGREGATE_SLACK_NS = 1_000_000_000  # aggregates are stamped at the tick they were counted in
_MAX_OFFSET_STEP_NS = 10_000_000
_IPV4_OR_UNKNOWN = ("", "ip", "udp")

Tuple5 = tuple[str, str, int, str, int]
"""(proto, saddr, sport, daddr, dport)."""


class DropsFileError(InvalidArgument):
    """A drops file that cannot be read (one line, no traceback)."""


@dataclass(frozen=True, slots=True)
class RecordedDrop:
    """One recorded kernel drop (or an aggregate of ``count``), on the wall
    clock of the packets; ``netns`` is the namespace's label."""

    wall_ns: int
    reason: str
    location: str
    netns: str = ""
    device: str = ""
    proto: str = ""
    saddr: str = ""
    daddr: str = ""
    sport: int = 0
    dport: int = 0
    count: int = 1
    netns_inode: int = 0

    @property
    def tuple5(self) -> Tuple5 | None:
        """The 5-tuple, for a single drop whose headers were read."""
        if self.count != 1 or not self.saddr or not self.sport:
            return None
        return (self.proto, self.saddr, self.sport, self.daddr, self.dport)

    @property
    def headerless(self) -> bool:
        """Its addresses are unknown, and it may have been an IPv4 packet."""
        return not self.saddr and self.proto in _IPV4_OR_UNKNOWN

    @property
    def where(self) -> str:
        """``REASON by FUNCTION on DEVICE (NAMESPACE)``."""
        text = f"{self.reason} by {self.location}"
        if self.device:
            text += f" on {self.device}"
        if self.netns:
            text += f" ({self.netns})"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "wall_ns": self.wall_ns,
            "reason": self.reason,
            "location": self.location,
            "netns": self.netns,
            "netns_inode": self.netns_inode,
            "device": self.device,
            "count": self.count,
        }
        out.update(drop_headers(self.proto, self.saddr, self.daddr, self.sport, self.dport))
        return out

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> RecordedDrop:
        return cls(
            wall_ns=int(row["wall_ns"]),
            reason=str(row["reason"]),
            location=str(row.get("location", "")),
            netns=str(row.get("netns", "")),
            device=str(row.get("device", "")),
            proto=str(row.get("proto", "")),
            saddr=str(row.get("saddr", "")),
            daddr=str(row.get("daddr", "")),
            sport=int(row.get("sport", 0)),
            dport=int(row.get("dport", 0)),
            count=int(row.get("count", 1)),
            netns_inode=int(row.get("netns_inode", 0)),
        )


@dataclass(frozen=True, slots=True)
class DropLog:
    """The drops of one or more recordings. ``spans`` are the wall-clock
    intervals during which drops were recorded; ``unavailable`` are the
    lines of recordings that could not run, saying what was missing."""

    drops: tuple[RecordedDrop, ...] = ()
    spans: tuple[tuple[int, int], ...] = ()
    mechanisms: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    unavailable: tuple[str, ...] = ()
    lost: int = 0  # drops the tracer reported it could not read
    warnings: tuple[str, ...] = ()

    @property
    def recorded(self) -> bool:
        return bool(self.spans)

    def covers(self, ts_ns: int) -> bool:
        return any(a <= ts_ns <= b for a, b in self.spans)


def sidecar_path(capture: str | Path) -> Path:
    """Where ``capture --drops`` writes the drops of ``capture``:
    ``lab.pcapng`` → ``lab.drops.jsonl``."""
    return Path(capture).with_suffix(SIDECAR_SUFFIX)


def sidecar_logs(captures: Iterable[str | Path]) -> list[DropLog]:
    """The sidecars that exist next to ``captures``, read."""
    return [read_sidecar(p) for p in map(sidecar_path, captures) if p.is_file()]


def merge_logs(logs: Iterable[DropLog]) -> DropLog:
    """One log of several (drops by time, spans and notes of all)."""
    logs = list(logs)
    drops = sorted((d for log in logs for d in log.drops), key=lambda d: d.wall_ns)
    return DropLog(
        drops=tuple(drops),
        spans=tuple(sorted(s for log in logs for s in log.spans)),
        mechanisms=tuple(dict.fromkeys(m for log in logs for m in log.mechanisms)),
        sources=tuple(s for log in logs for s in log.sources),
        unavailable=tuple(dict.fromkeys(u for log in logs for u in log.unavailable)),
        lost=sum(log.lost for log in logs),
        warnings=tuple(w for log in logs for w in log.warnings),
    )


def read_sidecar(path: str | Path) -> DropLog:
    """Read a ``.drops.jsonl`` written by ``capture --drops``.

    Lines: ``{"kind": "recording", "since_ns", "mechanism", "summary",
    "wall_offset_ns", ...}`` when the tracer started; ``{"kind": "drop",
    ...}`` per drop (:meth:`RecordedDrop.to_json`); ``{"kind": "end",
    "until_ns", "lost", "wall_offset_ns"}`` when it stopped; or ``{"kind":
    "unavailable", "reason"}`` when no tracer could run. A recording without
    an end (the capture was killed) counts up to its last drop. A damaged
    line is skipped and counted in the warnings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DropsFileError(f"cannot read drops file {path}: {exc.strerror or exc}") from None
    drops: list[RecordedDrop] = []
    spans: list[tuple[int, int]] = []
    mechanisms: list[str] = []
    unavailable: list[str] = []
    warnings: list[str] = []
    lost = 0
    since: int | None = None
    offset0: int | None = None
    last_ts = 0
    bad = 0
    kinds = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            kind = row["kind"]
            if kind == "drop":
                drop = RecordedDrop.from_json(row)
                drops.append(drop)
                last_ts = max(last_ts, drop.wall_ns)
            elif kind == "recording":
                since = int(row["since_ns"])
                offset0 = int(row["wall_offset_ns"]) if "wall_offset_ns" in row else None
                mechanisms.append(str(row.get("summary") or row.get("mechanism", "")))
                last_ts = max(last_ts, since)
            elif kind == "end":
                until = int(row["until_ns"])
                lost += int(row.get("lost", 0))
                if since is not None:
                    spans.append((since, max(until, since)))
                    if offset0 is not None and "wall_offset_ns" in row:
                        step = int(row["wall_offset_ns"]) - offset0
                        if abs(step) > _MAX_OFFSET_STEP_NS:
                            warnings.append(
                                f"{path}: the wall clock moved by {step / 1e9:+.3f} s while "
                                "drops were recorded: their times may be off by that much"
                            )
                since = None
            elif kind == "unavailable":
                unavailable.append(str(row["reason"]))
            else:
                continue
            kinds += 1
        except (ValueError, KeyError, TypeError):
            bad += 1
    if not kinds and bad:
        raise DropsFileError(f"{path} is not a drops file (written by netsleuth capture --drops)")
    if since is not None:  # never ended: the capture was killed; trust what was written
        spans.append((since, last_ts))
        warnings.append(f"{path}: the recording has no end (was the capture killed?)")
    if bad:
        warnings.append(f"{path}: {bad} damaged line(s) skipped")
    drops.sort(key=lambda d: d.wall_ns)
    return DropLog(
        drops=tuple(drops),
        spans=tuple(spans),
        mechanisms=tuple(mechanisms),
        sources=(str(path),),
        unavailable=tuple(unavailable),
        lost=lost,
        warnings=tuple(warnings),
    )


def drops_from_events(
    events: Sequence[NetEvent], runs: Sequence[tuple[int, int | None]] = (), source: str = ""
) -> DropLog | None:
    """The drops a watch store recorded, or None when it holds neither drops
    nor a ``drops`` note. ``runs`` are the (started_ns, ended_ns) of the
    store's runs: each note ``drops via ...`` opens a span that lasts until
    the end of its run (or the store's last event)."""
    drops: list[RecordedDrop] = []
    starts: list[int] = []
    mechanisms: list[str] = []
    unavailable: list[str] = []
    last = 0
    for ev in events:
        last = max(last, ev.wall_ns)
        if ev.kind is EventKind.DROP and isinstance(ev.detail, DropDetail):
            d = ev.detail
            drops.append(
                RecordedDrop(
                    wall_ns=ev.wall_ns,
                    reason=d.reason,
                    location=d.location,
                    netns=ev.netns,
                    device=d.device or ev.ifname,
                    proto=d.proto,
                    saddr=d.saddr,
                    daddr=d.daddr,
                    sport=d.sport,
                    dport=d.dport,
                    count=d.count,
                    netns_inode=d.netns_inode,
                )
            )
        elif (
            ev.kind is EventKind.NOTE
            and ev.subject == "drops"
            and isinstance(ev.detail, NoteDetail)
        ):
            if ev.detail.text.startswith("drops via"):
                starts.append(ev.wall_ns)
                mechanisms.append(ev.detail.text)
            else:
                unavailable.append(ev.detail.text)
    if not drops and not starts and not unavailable:
        return None
    spans = []
    for start in starts:
        ends = [e for s, e in runs if s <= start and e is not None and e >= start]
        spans.append((start, min(ends) if ends else max(last, start)))
    drops.sort(key=lambda d: d.wall_ns)
    return DropLog(
        drops=tuple(drops),
        spans=tuple(spans),
        mechanisms=tuple(dict.fromkeys(mechanisms)),
        sources=(source,) if source else (),
        unavailable=tuple(dict.fromkeys(unavailable)),
    )


@dataclass(frozen=True, slots=True)
class QueryDrop:
    """What the drops say about one lost query.

    ``status``: ``dropped`` (``drop`` is the drop of its packet), ``none``
    (the recording ran and holds no drop that could be its), ``unmatched``
    (no drop with its addresses, but drops without addresses were recorded
    then: ``nearby`` counts them by reason and function)."""

    status: str
    drop: RecordedDrop | None = None
    packet: str = "query"  # "query" or "answer": whose drop it is
    translated: bool = False  # matched on the post-NAT tuple
    delay_ns: int | None = None  # from the packet's last sighting to the drop
    more: int = 0  # further drops of the same packet
    nearby: tuple[tuple[str, str, int], ...] = ()

    @property
    def sentence(self) -> str:
        if self.status == "dropped" and self.drop is not None:
            whose = "its answer was dropped" if self.packet == "answer" else "dropped"
            nat = " after NAT" if self.translated else ""
            return f"{whose}{nat} as {self.drop.where}"
        if self.status == "none":
            return "no drop was recorded for it"
        shown = ", ".join(f"{n} {r} by {loc}" for r, loc, n in self.nearby[:3])
        return f"no drop with its addresses; drops without addresses then: {shown}"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "packet": self.packet,
            "translated": self.translated,
            "delay_ns": self.delay_ns,
            "more": self.more,
            "drop": None if self.drop is None else self.drop.to_json(),
            "nearby": [{"reason": r, "location": loc, "count": n} for r, loc, n in self.nearby],
            "text": self.sentence,
        }


@dataclass(frozen=True, slots=True)
class ReasonCount:
    """Lost queries dropped with one reason, by one function, on one device."""

    reason: str
    location: str
    device: str
    netns: str
    queries: int

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "location": self.location,
            "device": self.device,
            "netns": self.netns,
            "queries": self.queries,
        }


@dataclass(frozen=True, slots=True)
class DropReport:
    """The drops of the lost queries of one explanation. ``matches`` is
    aligned with the explanation's journeys (None: answered, or nothing to
    say). ``why`` says, once, why nothing could be said (no drops file, the
    source was unavailable, the recording did not cover the queries)."""

    recorded: bool
    why: str = ""
    sources: tuple[str, ...] = ()
    mechanisms: tuple[str, ...] = ()
    drops_total: int = 0
    lost_queries: int = 0
    covered: int = 0
    dropped: int = 0
    none_recorded: int = 0
    unmatched: int = 0
    by_reason: tuple[ReasonCount, ...] = ()
    matches: tuple[QueryDrop | None, ...] = ()
    warnings: tuple[str, ...] = ()
    lost_by_tracer: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float | None:
        """Share of the covered lost queries a drop explains."""
        return self.dropped / self.covered if self.covered else None

    def to_json(self) -> dict[str, Any]:
        return {
            "recorded": self.recorded,
            "why": self.why,
            "sources": list(self.sources),
            "mechanisms": list(self.mechanisms),
            "drops_recorded": self.drops_total,
            "lost_by_tracer": self.lost_by_tracer,
            "lost_queries": self.lost_queries,
            "covered": self.covered,
            "dropped": self.dropped,
            "no_drop_recorded": self.none_recorded,
            "unmatched": self.unmatched,
            "reasons": dict(self.reasons),
            "by_reason": [r.to_json() for r in self.by_reason],
            "warnings": list(self.warnings),
        }


def unavailable_report(why: str, journeys: Sequence[Journey]) -> DropReport:
    """Nothing to say about any query, and ``why``."""
    lost = sum(1 for j in journeys if j.verdict.failed)
    return DropReport(
        recorded=False, why=why, lost_queries=lost, matches=tuple(None for _ in journeys)
    )


def packet_of(j: Journey) -> tuple[str, list[tuple[Tuple5, bool]], int] | None:
    """The lost packet of a failed journey: ``("query" | "answer", [(tuple,
    translated)], last sighting)``; None for an answered one."""
    if not j.verdict.failed:
        return None
    cip, _, cport = j.client.rpartition(":")
    sip, _, sport = j.server.rpartition(":")
    nip, _, nport = j.nat_source.rpartition(":")
    cip, sip, nip = (x.strip("[]") for x in (cip, sip, nip))  # IPv6 is written [addr]:port
    proto = j.transport
    try:
        c, s = int(cport), int(sport)
        n = int(nport) if j.nat_source else 0
    except ValueError:
        return None
    if j.verdict is Fate.LOST_ON_RETURN:
        answers = [h.ts_ns for h in j.hops if h.response]
        last = max(answers) if answers else j.ts_ns
        tuples = [((proto, sip, s, cip, c), False)]
        if n:
            tuples.append(((proto, sip, s, nip, n), True))
        return "answer", tuples, last
    queries = [h.ts_ns for h in j.hops if not h.response]
    last = max(queries) if queries else j.ts_ns
    if n and (nip, n) != (cip, c):  # last seen after the NAT: it carried the translated tuple
        return "query", [((proto, nip, n, sip, s), True)], last
    return "query", [((proto, cip, c, sip, s), False)], last


def attribute_drops(
    journeys: Sequence[Journey],
    log: DropLog,
    *,
    window_ns: int = DEFAULT_DROP_WINDOW_NS,
    tolerance_ns: int = DEFAULT_DROP_TOLERANCE_NS,
) -> DropReport:
    """Find the drop of each lost journey's packet (see the module's docstring)."""
    if not log.recorded:
        why = (
            log.unavailable[0]
            if log.unavailable
            else "the drops file holds no recording (the drop source never started)"
        )
        return unavailable_report(f"not recorded ({why})", journeys)
    packets: list[tuple[str, list[tuple[Tuple5, bool]], int] | None] = [
        packet_of(j) for j in journeys
    ]
    # per tuple: the sightings (last_seen, journey index, translated), by time
    by_tuple: dict[Tuple5, list[tuple[int, int, bool]]] = {}
    for i, p in enumerate(packets):
        if p is None:
            continue
        for t, translated in p[1]:
            by_tuple.setdefault(t, []).append((p[2], i, translated))
    for sightings in by_tuple.values():
        sightings.sort()
    found: dict[int, tuple[RecordedDrop, bool]] = {}
    more: Counter[int] = Counter()
    headerless: list[RecordedDrop] = []
    for d in log.drops:
        key = d.tuple5
        if key is None:
            if d.headerless:
                headerless.append(d)
            continue
        rows = by_tuple.get(key)
        if not rows:
            continue
        k = bisect.bisect_right(rows, d.wall_ns + tolerance_ns, key=lambda r: r[0]) - 1
        if k < 0 or d.wall_ns - rows[k][0] > window_ns:
            continue
        _last, idx, translated = rows[k]
        if idx in found:
            more[idx] += 1
        else:
            found[idx] = (d, translated)
    headerless_ts = [d.wall_ns for d in headerless]
    matches: list[QueryDrop | None] = []
    by_reason: Counter[tuple[str, str, str, str]] = Counter()
    reasons: Counter[str] = Counter()
    lost = covered = dropped = none = unmatched = 0
    for i, p in enumerate(packets):
        if p is None:
            matches.append(None)
            continue
        lost += 1
        direction, _tuples, last = p
        hit = found.get(i)
        if hit is not None:
            d, translated = hit
            covered += 1
            dropped += 1
            by_reason[(d.reason, d.location, d.device, d.netns)] += 1
            reasons[d.reason] += 1
            matches.append(
                QueryDrop("dropped", d, direction, translated, d.wall_ns - last, more.get(i, 0))
            )
            continue
        if not log.covers(last):
            matches.append(None)
            continue
        covered += 1
        lo = bisect.bisect_left(headerless_ts, last - _AGGREGATE_SLACK_NS)
        hi = bisect.bisect_right(headerless_ts, last + window_ns + _AGGREGATE_SLACK_NS)
        if lo < hi:
            near: Counter[tuple[str, str]] = Counter()
            for d in headerless[lo:hi]:
                near[(d.reason, d.location)] += d.count
            unmatched += 1
            matches.append(
                QueryDrop(
                    "unmatched",
                    packet=direction,
                    nearby=tuple((r, loc, n) for (r, loc), n in near.most_common()),
                )
            )
        else:
            none += 1
            matches.append(QueryDrop("none", packet=direction))
    why = ""
    if lost and not covered:
        why = "the drop recording did not cover the lost queries' times"
    return DropReport(
        recorded=True,
        why=why,
        sources=log.sources,
        mechanisms=log.mechanisms,
        drops_total=sum(d.count for d in log.drops),
        lost_queries=lost,
        covered=covered,
        dropped=dropped,
        none_recorded=none,
        unmatched=unmatched,
        by_reason=tuple(
            ReasonCount(r, loc, dev, ns, n)
            for (r, loc, dev, ns), n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        matches=tuple(matches),
        warnings=log.warnings,
        lost_by_tracer=log.lost,
        reasons=dict(reasons.most_common()),
    )
