"""The frozen result of an analysis: what the renderers receive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from netsleuth.analysis.correlate import Correlation
from netsleuth.analysis.episodes import Episode
from netsleuth.drops.outages import DropCount

if TYPE_CHECKING:
    from netsleuth.analysis.containers import ContainerLife
    from netsleuth.analysis.counters import CounterEvidence
    from netsleuth.analysis.drops import DropEvidence
    from netsleuth.analysis.evidence import SeriesStats
    from netsleuth.analysis.scoring import CauseScore
    from netsleuth.analysis.states import StateEvidence

__all__ = [
    "Analysis",
    "BridgeState",
    "EpisodeDetail",
    "TargetStats",
    "Timeline",
    "Verdict",
]


@dataclass(frozen=True, slots=True)
class TargetStats:
    """Failure rate of one target, with a 95 % Wilson interval."""

    target: str
    attempts: int
    failed: int
    rate: float
    ci_low: float
    ci_high: float
    episodes: int
    longest_s: float
    gone_s: float = 0.0
    """Seconds the target was gone (its attempts are not counted above)."""


@dataclass(frozen=True, slots=True)
class BridgeState:
    """What the store knows about one bridge: its last recorded facts and how
    often its MAC changed in the selected data."""

    name: str
    mac: str | None
    addr_assign_type: int | None
    pinned: bool | None
    arp_notify: int | None
    ports: tuple[str, ...]
    mac_changes: int


@dataclass(frozen=True, slots=True)
class EpisodeDetail:
    """An episode with the events seen shortly before its onset
    (``(ms before onset, label)``, nearest first) and whether the target's
    gateway entry was stale during it (None when that was not monitored)."""

    episode: Episode
    before: tuple[tuple[float, str], ...]
    gateway_stale: bool | None
    drops: tuple[DropCount, ...] = ()
    """Kernel drops seen during it (:mod:`netsleuth.drops.outages`), most first."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The named cause (``cause`` is a short stable id) and what to do."""

    cause: str
    title: str
    bridge: str | None
    confidence: str
    p_value: float | None
    explanation: str
    fix: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Timeline:
    """Probe outcomes binned over time per target, and per event class the
    centres of the time bins that saw such events."""

    start_ns: int
    bin_ns: int
    targets: tuple[str, ...]
    attempts: tuple[tuple[int, ...], ...]
    failed: tuple[tuple[int, ...], ...]
    marks: tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything ``report`` shows, for one selection of a store."""

    source: str
    runs: tuple[int, ...]
    start_ns: int | None
    end_ns: int | None
    probes: int
    failed: int
    probe_interval_s: float | None
    targets: tuple[TargetStats, ...]
    episodes: tuple[EpisodeDetail, ...]
    correlations: tuple[Correlation, ...]
    bridges: tuple[BridgeState, ...]
    localisation: str
    notes: tuple[str, ...]
    verdict: Verdict
    timeline: Timeline
    causes: tuple[CauseScore, ...] = ()
    """Every scored cause, ranked: named ones first (the verdict is the first)."""
    states: tuple[StateEvidence, ...] = ()
    """How each family of recorded states lines up with the outages."""
    control: str | None = None
    """The target that probed from the namespace holding the bridges."""
    counters: tuple[CounterEvidence, ...] = ()
    """Every kernel counter family that rose, against the outages."""
    drops: tuple[DropEvidence, ...] = ()
    """Every kernel drop reason recorded, against the outages and the failed probes."""
    containers: tuple[ContainerLife, ...] = ()
    """Every container life ``watch --containers`` probed from (its series is its target)."""
    series: tuple[SeriesStats, ...] = ()
    """Attempts and failures of every series (probes, and real queries of ``--passive``)."""
