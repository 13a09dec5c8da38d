"""Analysis: from stored probes, events and host facts to a verdict.

Everything here is pure: functions take plain data (numpy probe columns,
series, events, facts) and return frozen dataclasses; only the thin loader
:func:`analyze` reads a :class:`~netsleuth.store.Store`.

Data flows: probe columns → :func:`find_episodes` (outages per target) →
:func:`correlate` (is an onset more likely shortly after each class of event?
Fisher's exact test, window chosen from the data, Holm-corrected) →
:func:`target_stats` / :func:`localise` (the host control, Wilson intervals) →
:func:`decide` (the knowledge base names the cause, the bridge and the fix) →
:class:`Analysis`, which :mod:`netsleuth.report` renders as terminal, JSON
and HTML output.

:mod:`netsleuth.analysis.synthetic` builds stores modelled on the measured
behaviour (flapping bridge, pinned, upstream loss, NAT flaps) for tests,
benchmarks and trying ``report`` without root.
"""

from netsleuth.analysis.control import localise, target_stats
from netsleuth.analysis.correlate import ALPHA, Correlation, EventClass, classify, correlate
from netsleuth.analysis.engine import analyze, analyze_data
from netsleuth.analysis.episodes import Episode, find_episodes
from netsleuth.analysis.knowledge import CAUSES, decide
from netsleuth.analysis.result import (
    Analysis,
    BridgeState,
    EpisodeDetail,
    TargetStats,
    Timeline,
    Verdict,
)

__all__ = [
    "ALPHA",
    "CAUSES",
    "Analysis",
    "BridgeState",
    "Correlation",
    "Episode",
    "EpisodeDetail",
    "EventClass",
    "TargetStats",
    "Timeline",
    "Verdict",
    "analyze",
    "analyze_data",
    "classify",
    "correlate",
    "decide",
    "find_episodes",
    "localise",
    "target_stats",
]
