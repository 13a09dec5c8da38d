"""The kernel drops seen during each outage, for the report.

An outage runs from its first failed attempt to its last; a query sent then
dies within milliseconds, a drop of an answer up to the probe timeout
later. So the drops of a target's namespace, of the host namespace and of
unknown namespaces (the ftrace fallback) between the outage's start and one
timeout after its end are counted by (reason, location, namespace, device).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from netsleuth.model import DropDetail, EventKind, NetEvent

__all__ = ["DropCount", "DropIndex"]

HOST_LABELS = ("host", "unknown")


@dataclass(frozen=True, slots=True)
class DropCount:
    reason: str
    location: str
    netns: str
    device: str
    count: int

    def to_json(self) -> dict[str, str | int]:
        return {
            "reason": self.reason,
            "location": self.location,
            "netns": self.netns,
            "device": self.device,
            "count": self.count,
        }

    @property
    def text(self) -> str:
        where = f"{self.netns}/{self.device}" if self.device else self.netns
        return f"{self.count}× {self.reason} by {self.location} ({where})"


class DropIndex:
    """The ``drop`` events of a recording, by time (wall clock)."""

    def __init__(self, events: Sequence[NetEvent]) -> None:
        drops = [e for e in events if e.kind is EventKind.DROP and isinstance(e.detail, DropDetail)]
        drops.sort(key=lambda e: e.wall_ns)
        self._events = drops
        self._times = [e.wall_ns for e in drops]

    def __bool__(self) -> bool:
        return bool(self._events)

    def during(
        self, target: str, start_ns: int, end_ns: int, after_ns: int = 1_500_000_000
    ) -> tuple[DropCount, ...]:
        """Counts of the drops in ``target``'s namespace, the host's or an
        unknown one from ``start_ns`` (less 50 ms) to ``end_ns`` + ``after_ns``,
        most first."""
        lo = bisect.bisect_left(self._times, start_ns - 50_000_000)
        hi = bisect.bisect_right(self._times, end_ns + after_ns)
        counts: Counter[tuple[str, str, str, str]] = Counter()
        for ev in self._events[lo:hi]:
            if ev.netns != target and ev.netns not in HOST_LABELS:
                continue
            d = ev.detail
            assert isinstance(d, DropDetail)
            counts[(d.reason, d.location, ev.netns, d.device or ev.ifname)] += d.count
        return tuple(
            DropCount(*key, n) for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )
