"""What a lab case showed, computed from its store. Pure over store data."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from netsleuth.analysis.episodes import find_episodes
from netsleuth.model import EventKind, NetEvent
from netsleuth.stats import wilson
from netsleuth.store import ProbeColumns, Series

__all__ = ["CaseResult", "Outage", "summarize_case"]

_PORT_EVENTS = (EventKind.PORT_JOINED, EventKind.PORT_LEFT)


@dataclass(frozen=True, slots=True)
class Outage:
    target: str
    start_ns: int
    duration_s: float
    failed: int
    before: str  # "port-left" / "port-joined" / "" : the last port event before the onset
    port: str
    ms_before: float | None  # how long before the onset that port event was


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    probes: int
    failed: int
    ci95: tuple[float, float]
    mac_changes: int
    churn_cycles: int
    outages: list[Outage]
    seconds: float
    first_probe_s: float | None = None
    store: str = ""
    run_id: int = 0  # the watch run in the store
    lab_id: str = ""  # the lab's run id (its namespaces are nsl-<lab_id>-*)
    extra: dict[str, Any] = field(default_factory=dict)
    recorded: str = ""
    """Why the case was replayed from a recorded scenario (empty: built live)."""
    note: str = ""
    """What a replayed case says about itself (empty for a live one)."""

    @property
    def failure_rate(self) -> float:
        return self.failed / self.probes if self.probes else 0.0

    def outage_stats(self) -> dict[str, float | int | None]:
        durations = [o.duration_s for o in self.outages]
        return {
            "count": len(durations),
            "min_s": min(durations) if durations else None,
            "median_s": statistics.median(durations) if durations else None,
            "max_s": max(durations) if durations else None,
            "after_port_left": sum(1 for o in self.outages if o.before == "port-left"),
            "after_port_joined": sum(1 for o in self.outages if o.before == "port-joined"),
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failure_rate"] = self.failure_rate
        data["ci95"] = list(self.ci95)
        data["outage_stats"] = self.outage_stats()
        return data


def summarize_case(
    name: str,
    cols: ProbeColumns,
    series: dict[int, Series],
    events: list[NetEvent],
    bridge: str,
    *,
    churn_cycles: int,
    seconds: float,
    lookback_s: float = 10.0,
) -> CaseResult:
    """Figures of one case over the attempts of the given ``series`` only."""
    cols = cols.take(np.isin(cols.series, list(series)))
    failed = int(cols.failed.sum())
    probes = len(cols)
    mac_changes = sum(
        1
        for e in events
        if e.kind == EventKind.MAC_CHANGED and e.netns == "host" and e.ifname == bridge
    )
    port_events = [e for e in events if e.kind in _PORT_EVENTS and e.subject == bridge]
    outages = []
    for ep in find_episodes(cols, series):
        before = [e for e in port_events if e.wall_ns <= ep.start_ns]
        last = before[-1] if before else None
        if last is not None and (ep.start_ns - last.wall_ns) / 1e9 > lookback_s:
            last = None
        outages.append(
            Outage(
                target=ep.target,
                start_ns=ep.start_ns,
                duration_s=ep.duration_s,
                failed=ep.failed,
                before=str(last.kind) if last else "",
                port=last.ifname if last else "",
                ms_before=(ep.start_ns - last.wall_ns) / 1e6 if last else None,
            )
        )
    return CaseResult(
        name, probes, failed, wilson(failed, probes), mac_changes, churn_cycles, outages, seconds
    )
