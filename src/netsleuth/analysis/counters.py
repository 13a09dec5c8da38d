"""Kernel counters against outages: did a loss counter rise while probes failed?

``watch`` stores a ``counters`` event per namespace and sample when some
counter rose (:class:`~netsleuth.model.CounterSample`). Here each rise is a
:class:`CounterRise` covering its sample's window ``(t - seconds, t]``, and
:func:`weigh` asks, for one counter, how many independent outages a rise
*met*: the rise's window overlaps the outage (from its first lost probe to its
recovery), give or take :data:`TOLERANCE_NS`.

The chance of that by accident, with outages independent of the counter:
an outage of length ``d`` meets one of the rises with probability at most
``p = min(1, sum over rises of (w + d + 2 tol) / T)`` (``w`` the rise's window,
``T`` the recorded span). With ``n`` independent outages and the largest
``p`` among them, the chance that ``k`` or more meet a rise is the binomial
tail ``P(X >= k)``, X ~ Bin(n, p). Outages of several targets starting within
:data:`SAME_OUTAGE_NS` count once.

Link counters are weighed per counter name across links
(``link.rx_otherhost_dropped``), keeping which links rose.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import binom

from netsleuth.analysis.episodes import Episode
from netsleuth.model import CounterSample, EventKind, NetEvent

__all__ = [
    "SAME_OUTAGE_NS",
    "TOLERANCE_NS",
    "CounterEvidence",
    "CounterRise",
    "counter_evidence",
    "counter_rises",
    "family_of",
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
            place = f"{r.netns} {parts[1]}" if parts[0] == "link" else r.netns
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


def _meets(rise: CounterRise, ep: Episode) -> bool:
    end = ep.recovered_ns if ep.recovered_ns is not None else ep.end_ns
    return rise.start_ns - TOLERANCE_NS <= end and ep.start_ns <= rise.end_ns + TOLERANCE_NS


def weigh(
    family: str, rises: Sequence[CounterRise], episodes: Sequence[Episode], span_ns: int
) -> CounterEvidence:
    """How one counter family's rises line up with the outages (see module doc)."""
    outages = _independent(episodes)
    met = 0
    worst = 0.0
    for ep in outages:
        group = [e for e in episodes if 0 <= e.start_ns - ep.start_ns < SAME_OUTAGE_NS]
        if any(_meets(r, e) for r in rises for e in group):
            met += 1
        end = ep.recovered_ns if ep.recovered_ns is not None else ep.end_ns
        d = end - ep.start_ns
        cover = sum(r.end_ns - r.start_ns + d + 2 * TOLERANCE_NS for r in rises)
        worst = max(worst, min(1.0, cover / max(1, span_ns)))
    p: float | None = None
    if outages and rises:
        p = float(binom.sf(met - 1, len(outages), worst)) if met else 1.0
    return CounterEvidence(family, tuple(rises), len(outages), met, p)


def counter_evidence(
    events: Iterable[NetEvent], episodes: Sequence[Episode], span_ns: int
) -> dict[str, CounterEvidence]:
    """Every counter family that rose, weighed against ``episodes``."""
    return {
        family: weigh(family, rises, episodes, span_ns)
        for family, rises in counter_rises(events).items()
    }
