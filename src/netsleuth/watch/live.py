"""Live per-series statistics for the terminal view and the final summary.
Pure: fed with :class:`ProbeResult` batches."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from netsleuth.model import Outcome, ProbeResult

__all__ = ["LiveStats", "SeriesStats"]


@dataclass(slots=True)
class SeriesStats:
    attempts: int = 0
    failed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    outage_since_ns: int | None = None  # wall time of the first failure of the current run
    outages: int = 0
    last_ns: int = 0
    gone: int = 0  # attempts recorded while the target was gone: neither tried nor failed

    def add(self, r: ProbeResult) -> None:
        if r.outcome is Outcome.TARGET_GONE:
            self.gone += 1
            self.outage_since_ns = None
            return
        self.attempts += 1
        self.outcomes[r.outcome.label] += 1
        self.last_ns = max(self.last_ns, r.wall_ns)
        if r.outcome.failed:
            self.failed += 1
            if self.outage_since_ns is None:
                self.outage_since_ns = r.wall_ns
                self.outages += 1
        else:
            self.outage_since_ns = None


@dataclass(slots=True)
class LiveStats:
    series: dict[tuple[str, str, str], SeriesStats] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)
    recent_events: list[str] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)  # gateways at risk right now
    risks_seen: Counter[str] = field(default_factory=Counter)  # every one, how often it began

    def add_results(self, results: list[ProbeResult]) -> None:
        for r in results:
            key = (r.target, r.probe, r.server)
            stats = self.series.get(key)
            if stats is None:
                stats = self.series[key] = SeriesStats()
            stats.add(r)

    def add_event_line(self, kind: str, line: str) -> None:
        """Count an event; show ``line`` among the recent ones (none if empty)."""
        self.events[kind] += 1
        if line:
            self.recent_events.append(line)
            del self.recent_events[:-5]

    @property
    def attempts(self) -> int:
        return sum(s.attempts for s in self.series.values())

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.series.values())
