"""What the scorers weigh and what they return (shared by every scorer module).

:class:`Evidence` is everything measured over one selection of a store;
:class:`CauseScore` is one cause's result. Scorers live in
:mod:`netsleuth.analysis.scoring` (state and pattern causes) and
:mod:`netsleuth.analysis.scorers` (kernel-counter causes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from netsleuth.analysis.correlate import Correlation
from netsleuth.analysis.counters import CounterEvidence
from netsleuth.analysis.drops import DropRecord
from netsleuth.analysis.result import BridgeState, EpisodeDetail, TargetStats
from netsleuth.analysis.states import StateEvidence
from netsleuth.analysis.unnated import UnnatedStretch
from netsleuth.causes import CAUSES

__all__ = [
    "CONFIDENCE_RANK",
    "CauseScore",
    "Evidence",
    "SeriesStats",
    "better",
    "confidence_label",
]

CONFIDENCE_RANK = {"high": 3, "medium": 2, "low": 1, "none": 0}


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """One probe stream: a probe from a target to one server, and how its
    attempts ended (failures by :attr:`~netsleuth.model.Outcome.label`)."""

    target: str
    probe: str
    server: str
    attempts: int
    failed: int
    outcomes: Mapping[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.failed / self.attempts if self.attempts else 0.0


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the scorers weigh, for one selection of a store."""

    episodes: tuple[EpisodeDetail, ...]
    correlations: tuple[Correlation, ...]
    states: Mapping[str, StateEvidence]
    bridges: tuple[BridgeState, ...]
    targets: tuple[TargetStats, ...]
    localisation: str
    control: str | None
    dns_only: bool
    counters: Mapping[str, CounterEvidence] = field(default_factory=dict)
    """Kernel counter families that rose, by family (:mod:`netsleuth.analysis.counters`)."""
    series: tuple[SeriesStats, ...] = ()
    """Every probe stream (target, probe, server) with its failures."""
    resolvers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Target -> the nameservers of its resolv.conf, as watch read them."""
    rp_filter: Mapping[str, int] = field(default_factory=dict)
    """Host namespace: ``all`` and each interface's own ``rp_filter``, as recorded."""
    mtu: Mapping[str, int] = field(default_factory=dict)
    """Host namespace: each interface's MTU, as recorded."""
    span_ns: int = 0
    """From the first probe attempt to the last (what the counters were weighed over)."""
    drops: DropRecord = field(default_factory=DropRecord)
    """Kernel drops by reason and place, against the outages and the failed
    probes they were the packets of (:mod:`netsleuth.analysis.drops`)."""
    unnated: tuple[UnnatedStretch, ...] = ()
    """When conntrack entries that escaped NAT were present (:mod:`netsleuth.analysis.unnated`)."""


@dataclass(frozen=True, slots=True)
class CauseScore:
    cause: str
    named: bool
    confidence: str
    p_value: float | None
    bridge: str | None = None
    """The bridge blamed (only causes that are a bridge's fault set it)."""
    evidence_for: tuple[str, ...] = ()
    evidence_against: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    """Values for the catalogue's title and fix templates."""

    @property
    def title(self) -> str:
        return CAUSES[self.cause].title_for(**{"bridge": self.bridge, **self.fields})

    @property
    def fix(self) -> str:
        return CAUSES[self.cause].fix_for(**{"bridge": self.bridge, **self.fields})


def confidence_label(p: float) -> str:
    """``high`` below 0.001, ``medium`` below 0.01, ``low`` below 0.05, else ``none``."""
    if p < 0.001:
        return "high"
    if p < 0.01:
        return "medium"
    if p < 0.05:
        return "low"
    return "none"


def better(a: str, b: str) -> str:
    """The higher of two confidence labels."""
    return a if CONFIDENCE_RANK[a] >= CONFIDENCE_RANK[b] else b
