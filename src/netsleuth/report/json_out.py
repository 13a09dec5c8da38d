"""The ``--json`` form of an analysis: plain dicts with stable keys
(documented in docs/report.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from netsleuth.analysis import Analysis, CauseScore, Correlation, EpisodeDetail, TargetStats
from netsleuth.analysis.containers import ContainerLife, ended_count
from netsleuth.analysis.evidence import SeriesStats
from netsleuth.analysis.states import StateEvidence
from netsleuth.analysis.stats import format_p
from netsleuth.passive import is_passive

__all__ = [
    "JSON_SCHEMA",
    "MAX_EPISODES",
    "cause_cells",
    "container_rows",
    "iso",
    "real_queries",
    "to_json",
]

JSON_SCHEMA = 1
MAX_EPISODES = 1000


def target_cells(t: TargetStats) -> list[str]:
    """One target's row, as both the terminal and the HTML report show it."""
    return [
        t.target,
        str(t.attempts),
        str(t.failed),
        f"{100 * t.rate:.3g} %",
        f"{100 * t.ci_low:.2g}–{100 * t.ci_high:.2g} %",
        str(t.episodes),
        f"{t.longest_s:.1f} s",
    ]


def correlation_cells(c: Correlation) -> list[str]:
    """One event class's row up to the p-values, as both reports show it."""
    return [
        c.label,
        str(c.events),
        f"{c.window_s * 1000:.0f} ms",
        f"{c.onsets_after}/{c.onsets}",
        f"{100 * c.exposed_share:.1f} %",
        f"{c.relative_risk:.1f}",
    ]


def cause_cells(c: CauseScore) -> list[str]:
    """One ranked cause's row, as both reports show it."""
    return [
        c.cause,
        "named" if c.named else "not named",
        c.confidence,
        format_p(c.p_value),
        c.bridge or "-",
        (c.evidence_for[0] if c.named or not c.evidence_against else c.evidence_against[0]),
    ]


def _cause(c: CauseScore) -> dict[str, Any]:
    return {
        "cause": c.cause,
        "title": c.title,
        "bridge": c.bridge,
        "confidence": c.confidence,
        "p_value": c.p_value,
        "named": c.named,
        "evidence_for": list(c.evidence_for),
        "evidence_against": list(c.evidence_against),
    }


def _state(se: StateEvidence) -> dict[str, Any]:
    return {
        "cause": se.family,
        "states": [str(s) for s in se.states],
        "intervals": len(se.intervals),
        "outages": se.outages,
        "aligned": [
            {
                "target": a.episode.target,
                "start": iso(a.episode.start_ns),
                "state": str(a.interval.state),
                "bridge": a.interval.bridge or None,
                "start_offset_ms": a.start_offset_ms,
                "end_offset_ms": a.end_offset_ms,
            }
            for a in se.aligned
        ],
        "inside": se.inside,
        "unexplained": se.unexplained,
        "quiet": se.quiet,
        "chance_per_outage": se.chance,
        "p_value": se.p_value,
    }


def iso(ns: int | None) -> str | None:
    """ISO 8601 UTC time of a wall-clock ns stamp (None stays None)."""
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def _num(x: float | None) -> float | None:
    if x is None or math.isnan(x):
        return None
    return x if math.isfinite(x) else (1e308 if x > 0 else -1e308)


def _correlation(c: Correlation) -> dict[str, Any]:
    return {
        "key": c.key,
        "label": c.label,
        "kind": c.kind,
        "bridge": c.bridge,
        "events": c.events,
        "window_s": c.window_s,
        "windows_tried": c.windows_tried,
        "onsets": c.onsets,
        "onsets_after": c.onsets_after,
        "onsets_after_share": c.onsets_after_share,
        "exposed_share": c.exposed_share,
        "relative_risk": _num(c.relative_risk),
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "significant": c.significant,
        "median_delay_ms": _num(c.median_delay_ms),
        "max_delay_ms": _num(c.max_delay_ms),
    }


def _container(c: ContainerLife) -> dict[str, Any]:
    return {
        "target": c.target,
        "name": c.name,
        "id": c.id,
        "image": c.image,
        "daemon": c.daemon,
        "life": c.life,
        "labels": dict(c.labels),
        "started": iso(c.started_ns),
        "ended": iso(c.ended_ns),
        "exit_code": c.exit_code,
    }


def container_rows(lives: Sequence[ContainerLife]) -> list[list[str]]:
    """Per container series: target, image, daemon, lives, ended (both reports)."""
    by_target: dict[str, list[ContainerLife]] = {}
    for c in lives:
        by_target.setdefault(c.target, []).append(c)
    return [
        [
            target,
            ", ".join(dict.fromkeys(c.image for c in group)),
            ", ".join(dict.fromkeys(c.daemon for c in group)),
            str(len(group)),
            str(ended_count(group)),
        ]
        for target, group in sorted(by_target.items())
    ]


def _series(s: SeriesStats) -> dict[str, Any]:
    return {
        "target": s.target,
        "probe": s.probe,
        "server": s.server,
        "attempts": s.attempts,
        "failed": s.failed,
        "outcomes": dict(s.outcomes),
        "source": "passive" if is_passive(s.probe) else "probe",
    }


def real_queries(series: Sequence[SeriesStats]) -> tuple[int, int]:
    """(queries, failed) of the series of real traffic (``watch --passive``)."""
    real = [s for s in series if is_passive(s.probe)]
    return sum(s.attempts for s in real), sum(s.failed for s in real)


def _episode(d: EpisodeDetail) -> dict[str, Any]:
    e = d.episode
    return {
        "target": e.target,
        "start": iso(e.start_ns),
        "start_ns": e.start_ns,
        "end_ns": e.end_ns,
        "duration_s": e.duration_s,
        "failed": e.failed,
        "attempts": e.attempts,
        "gateway_stale": d.gateway_stale,
        "before": [{"ms_before": ms, "event": label} for ms, label in d.before],
        "drops": [dc.to_json() for dc in d.drops],
    }


def to_json(analysis: Analysis, *, max_episodes: int = MAX_EPISODES) -> dict[str, Any]:
    """The analysis as JSON-ready dicts; at most ``max_episodes`` episodes
    (the first ones; ``episodes_total`` tells how many there were)."""
    a = analysis
    v = a.verdict
    return {
        "schema": JSON_SCHEMA,
        "source": a.source,
        "runs": list(a.runs),
        "start": iso(a.start_ns),
        "end": iso(a.end_ns),
        "start_ns": a.start_ns,
        "end_ns": a.end_ns,
        "probes": a.probes,
        "failed": a.failed,
        "probe_interval_s": a.probe_interval_s,
        "verdict": {
            "cause": v.cause,
            "title": v.title,
            "bridge": v.bridge,
            "confidence": v.confidence,
            "p_value": v.p_value,
            "explanation": v.explanation,
            "fix": v.fix,
            "evidence": list(v.evidence),
        },
        "causes": [_cause(c) for c in a.causes],
        "states": [_state(se) for se in a.states],
        "counters": [ce.to_json() for ce in a.counters],
        "drops": [de.to_json() for de in a.drops],
        "control": a.control,
        "localisation": a.localisation,
        "notes": list(a.notes),
        "targets": [
            {
                "target": t.target,
                "attempts": t.attempts,
                "failed": t.failed,
                "rate": t.rate,
                "ci95": [t.ci_low, t.ci_high],
                "episodes": t.episodes,
                "longest_s": t.longest_s,
                "gone_s": t.gone_s,
            }
            for t in a.targets
        ],
        "series": [_series(s) for s in a.series],
        "real_queries": real_queries(a.series)[0],
        "real_queries_failed": real_queries(a.series)[1],
        "containers": [_container(c) for c in a.containers],
        "containers_ended": ended_count(a.containers),
        "episodes": [_episode(d) for d in a.episodes[:max_episodes]],
        "episodes_total": len(a.episodes),
        "correlations": [_correlation(c) for c in a.correlations],
        "bridges": [
            {
                "name": b.name,
                "mac": b.mac,
                "addr_assign_type": b.addr_assign_type,
                "pinned": b.pinned,
                "arp_notify": b.arp_notify,
                "ports": list(b.ports),
                "mac_changes": b.mac_changes,
            }
            for b in a.bridges
        ],
    }
