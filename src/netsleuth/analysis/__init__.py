"""Analysis: from stored probes, events and host facts to a verdict.

Everything here is pure: functions take plain data (numpy probe columns,
series, events, facts) and return frozen dataclasses; only the thin loader
:func:`analyze` reads a :class:`~netsleuth.store.Store`.

Data flows: probe columns → :func:`find_episodes` (outages per target) →
:func:`correlate` (is an onset more likely shortly after each class of event?
Fisher's exact test, window chosen from the data, Holm-corrected) →
:func:`target_stats` / :func:`localise` (the host control, Wilson intervals);
``state-entered``/``state-left`` events → :func:`state_intervals` →
:func:`align` (do outages begin and end with a state a cause predicts, and
how likely is that by chance?) → :func:`score_all` (one scorer per cause of
the catalogue in :mod:`netsleuth.causes`, ranked) → :func:`verdict_of` →
:class:`Analysis`, which :mod:`netsleuth.report` renders as terminal, JSON
and HTML output.

Stores modelled on the measured behaviour (flapping bridge, pinned, upstream
loss, NAT flaps), for tests and benchmarks, are built by
``netsleuth_testing.synthetic`` (in ``testing/``, not shipped).
"""

from netsleuth.analysis.control import localise, target_stats
from netsleuth.analysis.correlate import ALPHA, Correlation, EventClass, classify, correlate
from netsleuth.analysis.engine import analyze, analyze_data
from netsleuth.analysis.episodes import Episode, find_episodes
from netsleuth.analysis.result import (
    Analysis,
    BridgeState,
    EpisodeDetail,
    TargetStats,
    Timeline,
    Verdict,
)
from netsleuth.analysis.scoring import (
    FAMILIES,
    SCORERS,
    CauseScore,
    Evidence,
    confidence_label,
    score_all,
    verdict_of,
)
from netsleuth.analysis.states import StateEvidence, StateInterval, align, state_intervals

__all__ = [
    "ALPHA",
    "FAMILIES",
    "SCORERS",
    "Analysis",
    "BridgeState",
    "CauseScore",
    "Correlation",
    "Episode",
    "EpisodeDetail",
    "EventClass",
    "Evidence",
    "StateEvidence",
    "StateInterval",
    "TargetStats",
    "Timeline",
    "Verdict",
    "align",
    "analyze",
    "analyze_data",
    "classify",
    "confidence_label",
    "correlate",
    "find_episodes",
    "localise",
    "score_all",
    "state_intervals",
    "target_stats",
    "verdict_of",
]
