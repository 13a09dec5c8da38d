"""When conntrack entries that escaped NAT were present (pure).

``watch`` writes the level ``ct.unnated_unreplied`` of a namespace
(:class:`~netsleuth.netns.unnated.UnnatedReader`) whenever it changed, back
to 0 included. Here the samples of each namespace become the stretches in
which the level was above zero: from the sample that first saw entries to
the one that saw none (or the end of the record), with the most seen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from netsleuth.model import CounterSample, EventKind, NetEvent

__all__ = ["UNNATED", "UnnatedStretch", "unnated_stretches"]

UNNATED = "ct.unnated_unreplied"


@dataclass(frozen=True, slots=True)
class UnnatedStretch:
    netns: str
    start_ns: int
    end_ns: int
    """The sample that saw none again, or the end of the record."""
    peak: int


def unnated_stretches(events: Iterable[NetEvent], end_ns: int) -> tuple[UnnatedStretch, ...]:
    """The stretches of every namespace, in time order (``end_ns``: where the
    record ends, for a stretch still open)."""
    levels: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for ev in events:
        if ev.kind is EventKind.COUNTERS and isinstance(ev.detail, CounterSample):
            value = ev.detail.levels.get(UNNATED)
            if value is not None:
                levels[ev.netns].append((ev.wall_ns, value))
    out: list[UnnatedStretch] = []
    for netns, steps in levels.items():
        start: int | None = None
        peak = 0
        for t, value in sorted(steps):
            if value > 0:
                if start is None:
                    start, peak = t, 0
                peak = max(peak, value)
            elif start is not None:
                out.append(UnnatedStretch(netns, start, t, peak))
                start = None
        if start is not None:
            out.append(UnnatedStretch(netns, start, max(end_ns, start), peak))
    return tuple(sorted(out, key=lambda s: s.start_ns))
