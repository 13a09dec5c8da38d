"""Kernel drop reasons as evidence: which reasons the kernel gave for the
packets it dropped while probes failed, where, and whose packets they were.

``watch`` stores every drop the kernel reported with a reason
(``drop`` events, :class:`~netsleuth.model.DropDetail`; under a storm,
per-second aggregates with a ``count``). Here they are grouped by *place*
(reason, kernel function, namespace, device) and weighed three ways:

- **Linked.** A failed probe that timed out recorded its source address and
  port; a drop of its 5-tuple (its query) or of the reversed one (its
  answer) between its sending and its timeout was that probe's packet
  (:func:`netsleuth.drops.link.link_drops`). This is no test of chance: the
  tuple holds a random source port, so an unrelated drop matches it within a
  second practically never. The probes of several independent outages dying
  with one reason is the mechanism seen, not inferred.
- **Outages with drops.** Each drop is a rise of the counter
  ``drop.REASON`` over the second before it (:data:`WINDOW_NS`), so the tests
  of :mod:`netsleuth.analysis.counters` apply unchanged: how many independent
  outages came with a drop (:func:`~netsleuth.analysis.counters.weigh`), and
  how many stretches of drops came during an outage
  (:func:`~netsleuth.analysis.counters.rises_in_outages`), each against the
  chance of that by accident; the better p, doubled (Bonferroni). Drops
  closer than that second merge into one rise first: the union of their
  windows, which is all the tests look at, stays the same, and a storm of
  tens of thousands of aggregates costs one sort.
- **Counted.** How many drops, and how many of them fell in an outage.

Pure: plain events and episodes in, frozen dataclasses out; linear in the
drops after one sort.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from netsleuth.analysis.counters import (
    SAME_OUTAGE_NS,
    TOLERANCE_NS,
    CounterEvidence,
    CounterRise,
    RiseStretches,
    rises_in_outages,
    weigh,
)
from netsleuth.analysis.episodes import Episode
from netsleuth.model import DropDetail, EventKind, NetEvent, NoteDetail, ProbeResult

if TYPE_CHECKING:
    from netsleuth.drops.link import ProbeDrops

__all__ = [
    "BRIDGE_REASONS",
    "WINDOW_NS",
    "DropEvidence",
    "DropPlace",
    "DropRecord",
    "drop_record",
    "mechanism_of",
]

WINDOW_NS = 1_000_000_000
"""A drop stands for a rise over the second before it."""

BRIDGE_REASONS = ("OTHERHOST", "NO_TX_TARGET")
"""Frames for a MAC the receiving device does not have, and a bridge flooding to no one."""

_EMPTY_I64: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class DropPlace:
    """Where drops of one reason happened, and how many."""

    reason: str
    location: str
    """The kernel function that dropped them."""
    netns: str
    """The namespace's label (``host``, ``netns:NAME``, ``unknown``)."""
    device: str
    drops: int
    in_outages: int
    """Of ``drops``, those within an outage (a second before it to its recovery)."""
    linked: int
    """Failed probes a drop here was the packet of."""
    bridge: str = ""
    """The bridge in whose namespace it was, when the device is that bridge or a
    port it had (empty: none)."""
    to: str = ""
    """Where most of the drops here that had headers went: ``ADDR:PORT``, or
    ``ADDR`` when their ports differ (empty: no headers, or no majority)."""

    @property
    def where(self) -> str:
        """``by br_handle_frame_finish on vc0 (host namespace)``."""
        ns = "host namespace" if self.netns == "host" else self.netns
        on = f" on {self.device}" if self.device else ""
        return f"by {self.location}{on} ({ns})"

    @property
    def text(self) -> str:
        return f"{self.reason} {self.where}"

    def to_json(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "location": self.location,
            "netns": self.netns,
            "device": self.device,
            "bridge": self.bridge or None,
            "to": self.to or None,
            "drops": self.drops,
            "in_outages": self.in_outages,
            "linked": self.linked,
        }


@dataclass(frozen=True, slots=True)
class DropEvidence:
    """Drops of one reason (or a few weighed together) at some places, against
    the outages and the failed probes."""

    reasons: tuple[str, ...]
    places: tuple[DropPlace, ...]
    """Most drops first."""
    counter: CounterEvidence
    """The outages that came with a drop (:func:`~netsleuth.analysis.counters.weigh`)."""
    back: RiseStretches
    """The stretches of drops that came during an outage."""
    linked: int
    """Failed probes a selected drop was the packet of ..."""
    linkable: int
    """... of the failed probes that recorded their source while drops were recorded."""
    linked_outages: int
    """Independent outages with such a probe."""

    @property
    def reason(self) -> str:
        return " / ".join(self.reasons)

    @property
    def total(self) -> int:
        return sum(p.drops for p in self.places)

    @property
    def in_outages(self) -> int:
        return sum(p.in_outages for p in self.places)

    @property
    def p_value(self) -> float | None:
        """The better of the two tests of chance, doubled (None: nothing to test)."""
        tests = [p for p in (self.counter.p_value, self.back.p_value) if p is not None]
        return min(1.0, 2 * min(tests)) if tests else None

    @property
    def top(self) -> DropPlace:
        return self.places[0]

    def to_json(self) -> dict[str, object]:
        return {
            "reason": self.reason,
            "drops": self.total,
            "in_outages": self.in_outages,
            "outages": self.counter.outages,
            "met": self.counter.met,
            "stretches": self.back.stretches,
            "stretches_met": self.back.met,
            "p_value": self.p_value,
            "linked": self.linked,
            "linkable": self.linkable,
            "linked_outages": self.linked_outages,
            "places": [p.to_json() for p in self.places],
        }


@dataclass(frozen=True, slots=True)
class _Table:
    """Every drop event as parallel arrays, by time."""

    wall: npt.NDArray[np.int64]
    count: npt.NDArray[np.int64]
    place: npt.NDArray[np.int64]
    """Index into :attr:`keys`."""
    inside: npt.NDArray[np.bool_]
    """Within an outage."""
    keys: tuple[tuple[str, str, str, str], ...]
    """(reason, location, netns, device) of each place."""
    bridges: tuple[str, ...]
    to: tuple[str, ...]
    links: tuple[tuple[int, int], ...]
    """(place, failed probe) pairs, each once."""
    drops: tuple[int, ...]
    """Per place: drops ..."""
    inside_drops: tuple[int, ...]
    """... of them in an outage ..."""
    linked: tuple[int, ...]
    """... and failed probes linked."""


@dataclass(frozen=True, slots=True)
class DropRecord:
    """The drops of a selection of a store (empty: none were recorded)."""

    mechanism: str | None = None
    """``bpftrace``, ``ftrace`` (no namespace, device or headers) or None (not recorded)."""
    linkable: int = 0
    """Failed probes that recorded their source while drops were recorded."""
    linked: int = 0
    """Of those, the ones a drop (of any reason) was the packet of."""
    reasons: Mapping[str, DropEvidence] = field(default_factory=dict)
    """Each reason's drops at every place, most drops first."""
    bridges: Mapping[str, str] = field(default_factory=dict)
    """Bridge -> the namespace it is in (as recorded)."""
    _table: _Table | None = None
    _episodes: tuple[Episode, ...] = ()
    _probe_times: tuple[tuple[str, int], ...] = ()
    _span_ns: int = 0

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def select(
        self, reasons: Iterable[str], keep: Callable[[DropPlace], bool] | None = None
    ) -> DropEvidence | None:
        """The drops of ``reasons`` at the places ``keep`` accepts, weighed
        together (None: there were none)."""
        t = self._table
        chosen = tuple(dict.fromkeys(r for r in reasons if r))
        wanted = set(chosen)
        if t is None:
            return None
        places = [
            i
            for i, key in enumerate(t.keys)
            if key[0] in wanted and (keep is None or keep(self._place(i)))
        ]
        if not places:
            return None
        return self._weigh(chosen, places)

    def linked_elsewhere(self, reasons: Iterable[str]) -> list[DropPlace]:
        """Places of other reasons that failed probes were dropped at, most linked first."""
        t = self._table
        if t is None:
            return []
        wanted = set(reasons)
        out = [self._place(i) for i, key in enumerate(t.keys) if key[0] not in wanted]
        return sorted((p for p in out if p.linked), key=lambda p: (-p.linked, p.text))

    # -- the pieces ----------------------------------------------------------------------
    def _place(self, i: int) -> DropPlace:
        t = self._table
        assert t is not None
        return DropPlace(
            *t.keys[i],
            drops=t.drops[i],
            in_outages=t.inside_drops[i],
            linked=t.linked[i],
            bridge=t.bridges[i],
            to=t.to[i],
        )

    def _weigh(self, reasons: tuple[str, ...], places: Sequence[int]) -> DropEvidence:
        t = self._table
        assert t is not None
        mask = np.isin(t.place, np.asarray(places, dtype=np.int64))
        family = "drop." + "/".join(reasons)
        rises = _rises(family, t.wall[mask], t.count[mask])
        ce = weigh(family, rises, self._episodes, self._span_ns)
        back = rises_in_outages(ce, self._episodes, self._span_ns)
        chosen = set(places)
        probes = sorted({probe for place, probe in t.links if place in chosen})
        found = [self._place(i) for i in places]
        found.sort(key=lambda p: (-p.drops, -p.linked, p.text))
        return DropEvidence(
            reasons=reasons,
            places=tuple(found),
            counter=ce,
            back=back,
            linked=len(probes),
            linkable=self.linkable,
            linked_outages=_outages_of([self._probe_times[i] for i in probes], self._episodes),
        )


def _rises(
    family: str, wall: npt.NDArray[np.int64], count: npt.NDArray[np.int64]
) -> list[CounterRise]:
    """Drops (sorted by time) as rises over the second before each, those closer
    than a second merged: the union of the windows stays the same."""
    if wall.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(wall) > WINDOW_NS) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [wall.size])) - 1
    totals = np.add.reduceat(count, starts)
    return [
        CounterRise("", family, int(wall[a]) - WINDOW_NS, int(wall[b]), int(n), {})
        for a, b, n in zip(starts.tolist(), ends.tolist(), totals.tolist(), strict=True)
    ]


def _inside(wall: npt.NDArray[np.int64], episodes: Sequence[Episode]) -> npt.NDArray[np.bool_]:
    """For each drop time: does its window meet an outage (as :func:`weigh` counts it)?"""
    if not episodes or wall.size == 0:
        return np.zeros(wall.size, dtype=bool)
    lo = np.fromiter((e.start_ns for e in episodes), np.int64, len(episodes)) - TOLERANCE_NS
    hi = np.fromiter(
        (e.recovered_ns if e.recovered_ns is not None else e.end_ns for e in episodes),
        np.int64,
        len(episodes),
    )
    hi = hi + WINDOW_NS + TOLERANCE_NS
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], np.maximum.accumulate(hi[order])
    i = np.searchsorted(lo, wall, side="right") - 1
    found: npt.NDArray[np.bool_] = (i >= 0) & (hi[np.maximum(i, 0)] >= wall)
    return found


def _outages_of(probes: Sequence[tuple[str, int]], episodes: Sequence[Episode]) -> int:
    """Independent outages (starting :data:`SAME_OUTAGE_NS` apart) holding one
    of ``probes`` (target, wall time)."""
    by_target: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        by_target[ep.target].append(ep)
    starts = set()
    for target, wall in probes:
        for ep in by_target.get(target, ()):
            if ep.start_ns <= wall <= ep.end_ns:
                starts.add(ep.start_ns)
                break
    groups, last = 0, None
    for s in sorted(starts):
        if last is None or s - last >= SAME_OUTAGE_NS:
            groups += 1
            last = s
    return groups


def _destination(seen: Counter[str]) -> str:
    """The destination most of a place's drops went to: ``ADDR:PORT``, or
    ``ADDR`` when the ports differ (answers to clients' random ports); empty
    when none holds half of them."""
    total = sum(seen.values())
    if not total:
        return ""
    best, n = seen.most_common(1)[0]
    if 2 * n >= total:
        return best
    addrs: Counter[str] = Counter()
    for dest, k in seen.items():
        addrs[dest.rsplit(":", 1)[0]] += k
    addr, n = addrs.most_common(1)[0]
    return addr if 2 * n >= total else ""


def _count(ev: NetEvent) -> int:
    return ev.detail.count if isinstance(ev.detail, DropDetail) else 0


def mechanism_of(events: Iterable[NetEvent]) -> tuple[str | None, list[int]]:
    """How drops were recorded (the last ``drops`` note that says) and the wall
    times recording started (the notes ``drops via ...``)."""
    mechanism: str | None = None
    starts = []
    for ev in events:
        if ev.kind is not EventKind.NOTE or ev.subject != "drops":
            continue
        text = ev.detail.text if isinstance(ev.detail, NoteDetail) else ""
        if text.startswith("drops via"):
            mechanism = "bpftrace" if text.startswith("drops via bpftrace") else "ftrace"
            starts.append(ev.wall_ns)
    return mechanism, starts


def _link(probes: Sequence[ProbeResult], drops: Sequence[NetEvent]) -> list[ProbeDrops]:
    """:func:`netsleuth.drops.link.link_drops`, imported only when there are
    probes to link (it reads probe specs: the DNS library, for a report
    that has no use for it)."""
    if not probes:
        return []
    from netsleuth.drops.link import link_drops

    return link_drops(probes, drops)


def drop_record(
    events: Sequence[NetEvent],
    episodes: Sequence[Episode],
    span_ns: int,
    *,
    failed: Sequence[ProbeResult] = (),
    ports: Mapping[tuple[str, str], str] | None = None,
) -> DropRecord:
    """The drops of ``events`` against ``episodes`` and the ``failed`` probes
    (those that recorded their source are linked). ``ports``: (namespace,
    device) -> bridge, for the bridges and every port they had."""
    drops = [e for e in events if e.kind is EventKind.DROP and isinstance(e.detail, DropDetail)]
    mechanism, starts = mechanism_of(events)
    first = min(starts) if starts else None
    linkable = [p for p in failed if first is not None and p.wall_ns >= first]
    if not drops:
        sourced = len(_link(linkable, ()))
        return DropRecord(mechanism, linkable=sourced)
    drops.sort(key=lambda e: e.wall_ns)
    ports = dict(ports or {})
    bridges = {bridge: ns for (ns, _), bridge in sorted(ports.items())}
    index: dict[tuple[str, str, str, str], int] = {}
    place = np.empty(len(drops), dtype=np.int64)
    dests: list[Counter[str]] = []
    of_event: dict[int, int] = {}
    for i, ev in enumerate(drops):
        d = ev.detail
        assert isinstance(d, DropDetail)
        key = (d.reason, d.location, ev.netns, d.device or ev.ifname)
        j = index.setdefault(key, len(index))
        if j == len(dests):
            dests.append(Counter())
        place[i] = j
        if d.daddr:
            dests[j][f"{d.daddr}:{d.dport}" if d.dport else d.daddr] += d.count
        of_event[id(ev)] = j
    wall = np.fromiter((e.wall_ns for e in drops), np.int64, len(drops))
    count = np.asarray([_count(e) for e in drops], dtype=np.int64)
    inside = _inside(wall, episodes)
    links: set[tuple[int, int]] = set()
    linked_probes: set[int] = set()
    times: list[tuple[str, int]] = []
    for k, lk in enumerate(_link(linkable, drops)):
        times.append((lk.probe.target, lk.probe.wall_ns))
        for ev in lk.drops:
            links.add((of_event[id(ev)], k))
            linked_probes.add(k)
    keys = tuple(sorted(index, key=index.__getitem__))
    n = len(keys)
    per_link = Counter(place for place, _ in links)
    table = _Table(
        wall=wall,
        count=count,
        place=place,
        inside=inside,
        keys=keys,
        bridges=tuple(ports.get((k[2], k[3]), "") for k in keys),
        to=tuple(_destination(c) for c in dests),
        links=tuple(sorted(links)),
        drops=tuple(np.bincount(place, weights=count, minlength=n).astype(np.int64).tolist()),
        inside_drops=tuple(
            np.bincount(place[inside], weights=count[inside], minlength=n).astype(np.int64).tolist()
        ),
        linked=tuple(per_link.get(i, 0) for i in range(n)),
    )
    record = DropRecord(
        mechanism,
        linkable=len(times),
        linked=len(linked_probes),
        bridges=bridges,
        _table=table,
        _episodes=tuple(episodes),
        _probe_times=tuple(times),
        _span_ns=span_ns,
    )
    by_reason: dict[str, DropEvidence] = {}
    for reason in sorted({k[0] for k in keys}):
        found = record.select((reason,))
        if found is not None:
            by_reason[reason] = found
    ranked = dict(sorted(by_reason.items(), key=lambda kv: (-kv[1].total, kv[0])))
    return DropRecord(
        mechanism,
        linkable=len(times),
        linked=len(linked_probes),
        reasons=ranked,
        bridges=bridges,
        _table=table,
        _episodes=tuple(episodes),
        _probe_times=tuple(times),
        _span_ns=span_ns,
    )
