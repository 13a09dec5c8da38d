"""Kernel counters against outages: did a loss counter rise while probes failed?

``watch`` stores a ``counters`` event per namespace and sample when some
counter rose (:class:`~netsleuth.model.CounterSample`). Here each rise is a
:class:`CounterRise` covering its sample's window ``(t - seconds, t]``, and
:func:`weigh` asks, for one counter, how many independent outages a rise
*met*: the rise's window overlaps the outage (from its first lost probe to its
recovery), give or take :data:`TOLERANCE_NS`.

The chance of that by accident, with outages independent of the counter:
an outage of length ``d`` meets one of the rises when it starts in the union
of the rises' windows widened by ``d`` before and the tolerance either side,
so with probability at most ``p = min(1, |union| / T)`` (``T`` the recorded
span; rises in consecutive samples, as a burst gives, overlap and count once).
With ``n`` independent outages and the largest
``p`` among them, the chance that ``k`` or more meet a rise is the binomial
tail ``P(X >= k)``, X ~ Bin(n, p). Outages of several targets starting within
:data:`SAME_OUTAGE_NS` count once.

Link counters are weighed per counter name across links
(``link.rx_otherhost_dropped``), keeping which links rose.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netsleuth.analysis.episodes import Episode
from netsleuth.analysis.exact import binom_sf
from netsleuth.model import CounterSample, EventKind, NetEvent

__all__ = [
    "SAME_OUTAGE_NS",
    "TOLERANCE_NS",
    "CounterEvidence",
    "CounterRise",
    "RiseStretches",
    "counter_evidence",
    "counter_rises",
    "family_of",
    "rises_in_outages",
    "tail",
    "weigh",
]

TOLERANCE_NS = 250_000_000
"""Slack on either side of a sample window (reads are not instantaneous)."""

SAME_OUTAGE_NS = 1_000_000_000
"""Outages of different targets starting this close together are one outage."""


@dataclass(frozen=True, slots=True)
class CounterRise:
    netns: str
    counter: str
    """The full stored name (``link.eth0.rx_dropped``)."""
    start_ns: int
    end_ns: int
    delta: int
    levels: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class CounterEvidence:
    """What one counter family did over a selection."""

    family: str
    """``ct.insert_failed``, ``snmp.Udp.RcvbufErrors``, ``link.rx_dropped``, ..."""
    rises: tuple[CounterRise, ...]
    outages: int
    """Independent outages weighed."""
    met: int
    """Of those, how many a rise met."""
    p_value: float | None
    """Chance of ``met`` or more by accident (None: no outage or no rise)."""

    @property
    def total(self) -> int:
        return sum(r.delta for r in self.rises)

    @property
    def where(self) -> tuple[str, ...]:
        """Namespaces (and links, for link counters) where it rose, by total."""
        sums: dict[str, int] = defaultdict(int)
        for r in self.rises:
            parts = r.counter.split(".")
            link = ".".join(parts[1:-1])  # a VLAN link has a dot: eth0.100
            place = f"{r.netns} {link}" if parts[0] == "link" else r.netns
            sums[place] += r.delta
        return tuple(sorted(sums, key=lambda k: -sums[k]))

    def max_fill(self) -> float | None:
        """The fullest ``ct.count / ct.max`` seen beside a rise."""
        fills = [
            r.levels["ct.count"] / r.levels["ct.max"]
            for r in self.rises
            if r.levels.get("ct.max") and "ct.count" in r.levels
        ]
        return max(fills) if fills else None

    def to_json(self) -> dict[str, object]:
        return {
            "counter": self.family,
            "total": self.total,
            "samples": len(self.rises),
            "where": list(self.where),
            "outages": self.outages,
            "met": self.met,
            "p_value": self.p_value,
        }


def family_of(counter: str) -> str:
    """``link.eth0.rx_dropped`` -> ``link.rx_dropped``; others unchanged."""
    parts = counter.split(".")
    if parts[0] == "link" and len(parts) >= 3:
        return f"link.{parts[-1]}"
    return counter


def counter_rises(events: Iterable[NetEvent]) -> dict[str, list[CounterRise]]:
    """Every stored rise, by counter family, in time order."""
    out: dict[str, list[CounterRise]] = defaultdict(list)
    for ev in events:
        if ev.kind is not EventKind.COUNTERS or not isinstance(ev.detail, CounterSample):
            continue
        sample = ev.detail
        start = ev.wall_ns - int(sample.seconds * 1e9)
        for name, delta in sample.deltas.items():
            out[family_of(name)].append(
                CounterRise(ev.netns, name, start, ev.wall_ns, delta, sample.levels)
            )
    for rises in out.values():
        rises.sort(key=lambda r: r.end_ns)
    return dict(out)


def _independent(episodes: Sequence[Episode]) -> list[Episode]:
    """The first episode of each group starting within :data:`SAME_OUTAGE_NS`."""
    out: list[Episode] = []
    for ep in sorted(episodes, key=lambda e: e.start_ns):
        if out and ep.start_ns - out[-1].start_ns < SAME_OUTAGE_NS:
            continue
        out.append(ep)
    return out


def _union(rises: Sequence[CounterRise]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The rises' windows ``[start - tol, end + tol]`` merged into disjoint,
    sorted intervals (lows, highs)."""
    if not rises:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    lo = np.fromiter((r.start_ns for r in rises), np.int64, len(rises)) - TOLERANCE_NS
    hi = np.fromiter((r.end_ns for r in rises), np.int64, len(rises)) + TOLERANCE_NS
    return _merge(lo, hi)


def _covered(lows: npt.NDArray[np.int64], highs: npt.NDArray[np.int64], d: int) -> int:
    """How long the start of an outage lasting ``d`` can lie where it meets a
    rise: the length of the union of ``[low - d, high]``."""
    if lows.size == 0:
        return 0
    gaps = lows[1:] - highs[:-1]
    return int((highs - lows).sum() + d + np.minimum(gaps, d).sum())


def weigh(
    family: str, rises: Sequence[CounterRise], episodes: Sequence[Episode], span_ns: int
) -> CounterEvidence:
    """How one counter family's rises line up with the outages (see module
    doc). Linear in rises and outages (both sorted once)."""
    outages = _independent(episodes)
    lows, highs = _union(rises)
    eps = sorted(episodes, key=lambda e: e.start_ns)
    ep_starts = [e.start_ns for e in eps]

    def meets(ep: Episode) -> bool:
        end = ep.recovered_ns if ep.recovered_ns is not None else ep.end_ns
        i = int(np.searchsorted(lows, end, side="right")) - 1
        return i >= 0 and int(highs[i]) >= ep.start_ns

    met = 0
    longest = 0
    for ep in outages:
        first = bisect_left(ep_starts, ep.start_ns)
        last = bisect_left(ep_starts, ep.start_ns + SAME_OUTAGE_NS)
        if any(meets(e) for e in eps[first:last]):
            met += 1
        end = ep.recovered_ns if ep.recovered_ns is not None else ep.end_ns
        longest = max(longest, end - ep.start_ns)
    # the chance grows with the outage's length: the longest outage's is the largest
    worst = min(1.0, _covered(lows, highs, longest) / max(1, span_ns)) if outages else 0.0
    p: float | None = None
    if outages and rises:
        p = binom_sf(met, len(outages), worst) if met else 1.0
    return CounterEvidence(family, tuple(rises), len(outages), met, p)


# -- the other way round: did the counter rise only while probes failed? -------------


@dataclass(frozen=True, slots=True)
class RiseStretches:
    """A counter's rises merged into stretches of back-to-back samples, and
    how many of them came during an outage (``p``: by accident)."""

    stretches: int
    met: int
    cover: float
    """Share of the record in which a stretch would meet an outage (the
    largest among the stretches)."""
    p_value: float | None

    @property
    def all_met(self) -> bool:
        return self.stretches > 0 and self.met == self.stretches


EXACT_TAIL_MAX = 400
"""Up to this many stretches the tail is exact (Poisson binomial, quadratic);
beyond, the binomial with the largest chance bounds it from above."""


def _stretches(rises: Sequence[CounterRise]) -> list[tuple[int, int]]:
    """Rise windows that touch (within the tolerance) merged, in time order."""
    out: list[tuple[int, int]] = []
    for r in sorted(rises, key=lambda r: r.start_ns):
        if out and r.start_ns <= out[-1][1] + TOLERANCE_NS:
            out[-1] = (out[-1][0], max(out[-1][1], r.end_ns))
        else:
            out.append((r.start_ns, r.end_ns))
    return out


def _merge(
    lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Intervals ``[lo, hi]`` merged into disjoint sorted ones."""
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], np.maximum.accumulate(hi[order])
    starts = np.concatenate(([True], lo[1:] > hi[:-1]))
    ends = np.concatenate((starts[1:], [True]))
    return lo[starts], hi[ends]


def rises_in_outages(
    ce: CounterEvidence, episodes: Sequence[Episode], span_ns: int
) -> RiseStretches:
    """Did the counter rise only while probes failed?

    Back-to-back rises are one stretch (one burst of drops seen by several
    samples). A stretch of length ``w`` placed at random meets an outage
    with probability at most ``q`` = the share of the record covered by the
    outages, each widened by ``w`` and the tolerance on both sides. With
    ``m`` stretches, each with its own ``q``, the chance that ``k`` or more
    meet an outage by accident is the tail ``P(X >= k)`` of the sum of their
    Bernoulli trials (:func:`tail`). The reverse of :func:`weigh`, which
    asks whether the outages came with rises."""
    stretches = _stretches(ce.rises)
    if not stretches or not episodes or span_ns <= 0:
        return RiseStretches(len(stretches), 0, 0.0, None)
    ends = [e.recovered_ns if e.recovered_ns is not None else e.end_ns for e in episodes]
    lows, highs = _merge(
        np.fromiter((e.start_ns for e in episodes), np.int64, len(episodes)) - TOLERANCE_NS,
        np.asarray(ends, dtype=np.int64) + TOLERANCE_NS,
    )
    gaps = lows[1:] - highs[:-1]
    base = int((highs - lows).sum())
    met = 0
    qs: list[float] = []
    cover: dict[int, float] = {}
    for a, b in stretches:
        i = int(np.searchsorted(lows, b, side="right")) - 1
        if i >= 0 and int(highs[i]) >= a:
            met += 1
        w = b - a
        if w not in cover:  # the union of the outages widened by w before them
            cover[w] = min(1.0, (base + w + int(np.minimum(gaps, w).sum())) / span_ns)
        qs.append(cover[w])
    return RiseStretches(len(stretches), met, max(qs), tail(qs, met))


def tail(qs: Sequence[float], k: int) -> float:
    """P(X >= k) for X the number of successes of independent trials with
    success chances ``qs`` (the Poisson binomial distribution); for more than
    :data:`EXACT_TAIL_MAX` trials, the binomial tail with the largest chance
    (never smaller)."""
    if k <= 0:
        return 1.0
    if len(qs) > EXACT_TAIL_MAX:
        return binom_sf(k, len(qs), max(qs))
    dist = [1.0]  # dist[j]: P(j successes so far)
    for q in qs:
        dist = [
            (dist[j] if j < len(dist) else 0.0) * (1 - q) + (dist[j - 1] * q if j else 0.0)
            for j in range(len(dist) + 1)
        ]
    return min(1.0, max(0.0, sum(dist[k:])))


def counter_evidence(
    events: Iterable[NetEvent], episodes: Sequence[Episode], span_ns: int
) -> dict[str, CounterEvidence]:
    """Every counter family that rose, weighed against ``episodes``."""
    return {
        family: weigh(family, rises, episodes, span_ns)
        for family, rises in counter_rises(events).items()
    }
