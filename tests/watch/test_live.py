"""Live counts: what the view and the summary show (pure)."""

from __future__ import annotations

from netsleuth.model import Outcome, ProbeResult
from netsleuth.watch.live import LiveStats


def r(t: int, outcome: Outcome, target: str = "netns:a") -> ProbeResult:
    return ProbeResult(t, t, target, "dns:x", "198.18.0.1", outcome)


def test_outages_and_failures_are_counted_and_gone_is_neither() -> None:
    stats = LiveStats()
    stats.add_results(
        [
            r(1, Outcome.OK),
            r(2, Outcome.TIMEOUT),
            r(3, Outcome.TIMEOUT),
            r(4, Outcome.NXDOMAIN),  # an answer
            r(5, Outcome.TIMEOUT),
            r(6, Outcome.TARGET_GONE),
            r(7, Outcome.TARGET_GONE),
        ]
    )
    [s] = stats.series.values()
    assert (s.attempts, s.failed, s.outages, s.gone) == (5, 3, 2, 2)
    assert s.outage_since_ns is None  # the target went away: no outage is open
    assert (stats.attempts, stats.failed) == (5, 3)


def test_recent_events_keep_the_last_five() -> None:
    stats = LiveStats()
    for i in range(8):
        stats.add_event_line("port-left", f"line {i}")
    assert stats.events["port-left"] == 8
    assert stats.recent_events == [f"line {i}" for i in range(3, 8)]
