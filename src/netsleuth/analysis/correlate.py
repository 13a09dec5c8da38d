"""Correlate outage onsets with classes of network events (pure logic).

The question for every event class (a MAC change of bridge X, a port leaving
X, a container dying, the NAT rules changing, ...) is: *is an outage more
likely to begin shortly after such an event than at other times?*

The unit of observation is a probe attempt *at risk* of starting an outage:
an attempt whose target's previous attempt succeeded (or its first one). It
is an *onset* when it failed. It is *exposed* when an event of the class
happened at most ``w`` before it (or up to :data:`TIMESTAMP_TOLERANCE_NS`
after it, because events and probes are stamped by different threads).
Events seen inside a target's namespace (a stale gateway entry, a neighbour
change) only expose that target's attempts; events of the host expose all.

Outages that begin in several targets at once are one observation, not
several: of onsets less than two probe intervals apart only the earliest is
tested, the others are left out, so simultaneous targets do not inflate the
evidence.

For each class a one-sided Fisher exact test on the 2x2 table exposed/other x
onset/no onset gives a p-value; the effect size is the relative risk
P(onset | exposed) / P(onset | other). The window ``w`` is chosen from the
data: candidates run from the probe interval (an onset cannot be seen sooner)
in doublings up to the median gap between events of the class (beyond it
nearly all time is exposed); the best candidate's p-value is multiplied by
the number of candidates (Bonferroni), and then Holm's method corrects across
all classes tried.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from netsleuth.analysis.stats import fisher_greater, holm, relative_risk
from netsleuth.model import (
    DockerDetail,
    EventKind,
    FirewallChange,
    InvariantDetail,
    MacChange,
    NetEvent,
)

__all__ = [
    "ALPHA",
    "TIMESTAMP_TOLERANCE_NS",
    "AtRisk",
    "Correlation",
    "EventClass",
    "Onsets",
    "candidate_windows",
    "classify",
    "classify_all",
    "correlate",
    "correlate_onsets",
    "merge_simultaneous",
]

ALPHA = 0.01
"""Corrected p-value below which a correlation counts as significant."""

TIMESTAMP_TOLERANCE_NS = 20_000_000
"""An event stamped up to this long after an attempt still counts as before it."""

MAX_WINDOWS = 10


@dataclass(frozen=True, slots=True)
class EventClass:
    """What an event is, for correlation: ``key`` is stable, ``label`` reads well."""

    key: str
    label: str
    kind: str
    bridge: str | None = None


@dataclass(frozen=True, slots=True)
class AtRisk:
    """The attempts of one target that could start an outage, in time order."""

    target: str
    wall_ns: npt.NDArray[np.int64]
    onset: npt.NDArray[np.bool_]


Counter = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], int]
"""How many attempts lie in the closed intervals ``[lo[i], hi[i]]`` (summed)."""


def points_counter(sorted_ns: npt.NDArray[np.int64]) -> Counter:
    """A :data:`Counter` of the times in ``sorted_ns`` (ascending). The
    tests ask with the same ``lo`` for every window in turn: where those
    fall is looked up once (kept while the same array comes back)."""
    last: list[Any] = [None, None]

    def count(lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]) -> int:
        upto = np.searchsorted(sorted_ns, hi, side="right")
        if last[0] is not lo:
            last[0], last[1] = lo, np.searchsorted(sorted_ns, lo, side="left")
        return int(np.maximum(upto - last[1], 0).sum())

    return count


@dataclass(frozen=True, slots=True)
class Onsets:
    """The at-risk attempts of one target, as the test needs them: the times
    of its onsets (ascending), and the others (at risk, not an onset) only as
    a count of those in given intervals and their number. The others are
    nearly every attempt of a long record; counting them by time spares the
    test one number per attempt and class."""

    target: str
    onset_ns: npt.NDArray[np.int64]
    others: int
    count_others: Counter


@dataclass(frozen=True, slots=True)
class Correlation:
    """The result of testing one event class against outage onsets."""

    key: str
    label: str
    kind: str
    bridge: str | None
    events: int
    window_s: float
    windows_tried: int
    onsets: int
    onsets_after: int
    exposed_share: float
    relative_risk: float
    p_value: float
    p_adjusted: float
    significant: bool
    median_delay_ms: float | None
    max_delay_ms: float | None

    @property
    def onsets_after_share(self) -> float:
        return self.onsets_after / self.onsets if self.onsets else 0.0


_IGNORED = {
    EventKind.INVARIANT_RECOVERED,
    EventKind.TARGET_BACK,
    EventKind.TARGET_ENDED,  # a container's life ended (docker:die is its cause class)
    EventKind.NOTE,
    # states are weighed by their alignment with outages (analysis.states), not as onsets
    EventKind.STATE_ENTERED,
    EventKind.STATE_LEFT,
    # counters are weighed by when they rose against the outages (analysis.counters)
    EventKind.COUNTERS,
    # drops are weighed separately (netsleuth.drops.link, the report's drops per outage)
    EventKind.DROP,
}


def classify(event: NetEvent, bridges: Iterable[str] = ()) -> EventClass | None:
    """The class of an event, or None for events that mark an end, not a cause."""
    kind = EventKind(event.kind)
    where = event.netns
    detail = event.detail
    if kind in _IGNORED:
        return None
    if kind is EventKind.MAC_CHANGED:
        of_bridge = isinstance(detail, MacChange) and detail.kind == "bridge"
        if of_bridge or event.ifname in set(bridges):
            br = event.ifname
            return EventClass(f"mac-changed:{br}", f"MAC of bridge {br} changed", kind, br)
        return EventClass(
            f"mac-changed:{event.ifname}@{where}", f"MAC of {event.ifname} ({where}) changed", kind
        )
    if kind in (EventKind.PORT_JOINED, EventKind.PORT_LEFT):
        br = event.subject
        verb = "joined" if kind is EventKind.PORT_JOINED else "left"
        return EventClass(f"{kind}:{br}", f"port {verb} bridge {br}", kind, br)
    if kind is EventKind.INVARIANT_VIOLATED:
        invariant = detail if isinstance(detail, InvariantDetail) else InvariantDetail()
        br = invariant.bridge
        on = f" (bridge {br})" if br else ""
        if invariant.owned_by_port:
            # the old MAC is still a port's: frames to it still reach the host
            return EventClass(
                f"{kind}:owned:{br}",
                f"gateway entry behind, old MAC still on a port{on}",
                kind,
                br or None,
            )
        return EventClass(f"{kind}:{br}", f"gateway entry went stale{on}", kind, br or None)
    if kind is EventKind.FIREWALL_CHANGED:
        if isinstance(detail, FirewallChange) and detail.nat:
            return EventClass(f"{kind}:nat@{where}", f"NAT rules changed ({where})", kind)
        return EventClass(f"{kind}@{where}", f"firewall rules changed ({where})", kind)
    if kind is EventKind.DOCKER:
        action = (detail.action if isinstance(detail, DockerDetail) else "") or "event"
        return EventClass(f"docker:{action}", f"container {action}", kind)
    if kind is EventKind.NEIGH_CHANGED:
        return EventClass(f"{kind}@{where}", f"neighbour entry changed ({where})", kind)
    label = str(kind).replace("-", " ")
    return EventClass(f"{kind}@{where}", f"{label} ({where})", kind)


def classify_all(
    events: Iterable[NetEvent], bridges: Iterable[str] = ()
) -> list[EventClass | None]:
    """:func:`classify` of every event (one list, for the several steps of an
    analysis that each go through every event)."""
    names = set(bridges)
    return [classify(ev, names) for ev in events]


def candidate_windows(
    probe_interval_ns: int, event_times: Sequence[int], span_ns: int
) -> list[int]:
    """Windows to try for one class: doublings from the probe interval up to
    the median gap between its events (half the span with fewer than 2)."""
    low = max(1_000_000, probe_interval_ns)
    times = np.unique(np.asarray(event_times, dtype=np.int64))
    high = int(np.median(np.diff(times))) if times.size >= 2 else span_ns // 2
    if high <= low:
        return [low]
    count = int(np.floor(np.log2(high / low))) + 1
    if count <= MAX_WINDOWS:
        return [low << i for i in range(count)]
    return [int(w) for w in np.geomspace(low, high, MAX_WINDOWS)]


def _since_last(
    wall_ns: npt.NDArray[np.int64], events: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """For every attempt, ns since the latest event stamped at most the tolerance after it."""
    if events.size == 0:
        return np.full(wall_ns.size, np.inf)
    q = wall_ns + TIMESTAMP_TOLERANCE_NS
    idx = np.searchsorted(events, q, side="right") - 1
    dt = (q - events[np.maximum(idx, 0)]).astype(np.float64)
    dt[idx < 0] = np.inf
    return dt


def _simultaneous(
    onset_ns: Sequence[npt.NDArray[np.int64]], within_ns: int
) -> dict[int, list[int]]:
    """Per list (by index), the positions of its onsets that follow an onset
    of any list by at most ``within_ns``."""
    stamped = sorted(
        (int(t), i, j) for i, times in enumerate(onset_ns) for j, t in enumerate(times.tolist())
    )
    drop: dict[int, list[int]] = defaultdict(list)
    last = None
    for t, i, j in stamped:
        if last is not None and t - last <= within_ns:
            drop[i].append(j)
        else:
            last = t
    return drop


def merge_simultaneous(at_risk: Sequence[AtRisk], within_ns: int) -> list[AtRisk]:
    """Drop onsets that follow an onset of any target by at most ``within_ns``."""
    positions = [np.flatnonzero(r.onset) for r in at_risk]
    drop = _simultaneous([r.wall_ns[p] for r, p in zip(at_risk, positions, strict=True)], within_ns)
    out = []
    for i, r in enumerate(at_risk):
        if i not in drop:
            out.append(r)
            continue
        keep = np.ones(r.wall_ns.size, dtype=bool)
        keep[positions[i][drop[i]]] = False
        out.append(AtRisk(r.target, r.wall_ns[keep], r.onset[keep]))
    return out


def _merge_onsets(onsets: Sequence[Onsets], within_ns: int) -> list[Onsets]:
    """:func:`merge_simultaneous` for :class:`Onsets` (the others stay)."""
    drop = _simultaneous([o.onset_ns for o in onsets], within_ns)
    return [
        replace(o, onset_ns=np.delete(o.onset_ns, drop[i])) if i in drop else o
        for i, o in enumerate(onsets)
    ]


def correlate(
    at_risk: Sequence[AtRisk],
    events: Sequence[NetEvent],
    *,
    probe_interval_ns: int,
    span_ns: int,
    bridges: Iterable[str] = (),
    alpha: float = ALPHA,
) -> list[Correlation]:
    """Test every event class seen against the onsets; strongest first."""
    onsets = []
    for r in at_risk:
        others = np.sort(r.wall_ns[~r.onset])
        onsets.append(
            Onsets(r.target, r.wall_ns[r.onset], int(others.size), points_counter(others))
        )
    return correlate_onsets(
        onsets,
        events,
        probe_interval_ns=probe_interval_ns,
        span_ns=span_ns,
        bridges=bridges,
        alpha=alpha,
    )


def _exposed(count: Counter, events: npt.NDArray[np.int64], limits: Sequence[int]) -> list[int]:
    """For each ``limit``, how many attempts had an event at most ``limit``
    before their time plus the tolerance (``_since_last(...) <= limit``).
    The latest such event of an attempt is ``e[i]`` when ``e[i] - tol <= t <
    e[i+1] - tol``; it is exposed when also ``t <= e[i] - tol + limit``."""
    if events.size == 0:
        return [0] * len(limits)
    starts = np.unique(events) - TIMESTAMP_TOLERANCE_NS
    nexts = np.append(starts[1:] - 1, np.iinfo(np.int64).max)
    return [count(starts, np.minimum(starts + limit, nexts)) for limit in limits]


def correlate_onsets(
    onsets: Sequence[Onsets],
    events: Sequence[NetEvent],
    *,
    probe_interval_ns: int,
    span_ns: int,
    bridges: Iterable[str] = (),
    alpha: float = ALPHA,
    classes: Sequence[EventClass | None] | None = None,
) -> list[Correlation]:
    """:func:`correlate` on the onsets and counts of the other attempts
    (``classes``: :func:`classify_all` of the events, when known)."""
    if classes is None:
        classes = classify_all(events, bridges)
    onsets = _merge_onsets(onsets, 2 * probe_interval_ns)
    targets = {r.target for r in onsets}
    n_onsets = sum(int(r.onset_ns.size) for r in onsets)
    if n_onsets == 0:
        return []
    # class -> scope (None = every target) -> times
    times: dict[EventClass, dict[str | None, list[int]]] = defaultdict(lambda: defaultdict(list))
    for ev, cls in zip(events, classes, strict=True):
        if cls is None:
            continue
        scope = ev.netns if ev.netns in targets and ev.netns != "host" else None
        times[cls][scope].append(ev.wall_ns)

    tested: list[Correlation] = []
    for cls, by_scope in times.items():
        everywhere = np.sort(np.asarray(by_scope.get(None, []), dtype=np.int64))
        all_times = [t for ts in by_scope.values() for t in ts]
        windows = candidate_windows(probe_interval_ns, all_times, span_ns)
        limits = [w + TIMESTAMP_TOLERANCE_NS for w in windows]
        onset_dt: list[npt.NDArray[np.float64]] = []
        others = 0
        exposed = [0] * len(windows)
        for r in onsets:
            if r.target not in by_scope and everywhere.size == 0:
                continue  # events of this class were only seen in other targets
            own = np.asarray(by_scope.get(r.target, []), dtype=np.int64)
            ev_t = np.sort(np.concatenate((everywhere, own))) if own.size else everywhere
            onset_dt.append(_since_last(r.onset_ns, ev_t))
            others += r.others
            exposed = [
                x + y for x, y in zip(exposed, _exposed(r.count_others, ev_t, limits), strict=True)
            ]
        on = np.sort(np.concatenate(onset_dt)) if onset_dt else np.empty(0)
        if on.size == 0:
            continue
        best = (2.0, 0, 0, 0)
        for w, limit, b in zip(windows, limits, exposed, strict=True):
            a = int(np.searchsorted(on, limit, side="right"))
            p = fisher_greater(a, b, on.size - a, others - b)
            if p < best[0]:
                best = (p, w, a, b)
        p, w, a, b = best
        delays = on[:a] - TIMESTAMP_TOLERANCE_NS
        tested.append(
            Correlation(
                key=cls.key,
                label=cls.label,
                kind=str(cls.kind),
                bridge=cls.bridge,
                events=len(all_times),
                window_s=w / 1e9,
                windows_tried=len(windows),
                onsets=int(on.size),
                onsets_after=a,
                exposed_share=b / others if others else 0.0,
                relative_risk=relative_risk(a, a + b, on.size - a, others - b),
                p_value=p,
                p_adjusted=min(1.0, p * len(windows)),  # corrected across classes below
                significant=False,
                median_delay_ms=float(np.median(delays)) / 1e6 if a else None,
                max_delay_ms=float(delays.max()) / 1e6 if a else None,
            )
        )
    adjusted = holm([c.p_adjusted for c in tested])
    result = [
        replace(c, p_adjusted=p_adj, significant=p_adj < alpha)
        for c, p_adj in zip(tested, adjusted, strict=True)
    ]
    result.sort(key=lambda c: (c.p_adjusted, -c.relative_risk, c.key))
    return result
