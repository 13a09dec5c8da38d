import numpy as np

from netsleuth.lab.summary import summarize_case
from netsleuth.model import EventKind, MacChange, NetEvent, Outcome
from netsleuth.store import ProbeColumns, Series

S = 1_000_000_000


def _cols(outcomes: list[Outcome]) -> ProbeColumns:
    n = len(outcomes)
    wall = np.arange(n, dtype=np.int64) * (S // 20) + 100 * S
    return ProbeColumns(
        run=np.ones(n, dtype=np.int64),
        series=np.ones(n, dtype=np.int64),
        wall_ns=wall,
        mono_ns=wall.copy(),
        outcome=np.array(outcomes, dtype=np.int8),
        latency_ns=np.full(n, -1, dtype=np.int64),
    )


def test_outages_are_tied_to_the_port_event_before_them() -> None:
    ok, to = Outcome.OK, Outcome.TIMEOUT
    cols = _cols([ok] * 20 + [to] * 40 + [ok] * 20)  # outage starts at 100 s + 1 s
    onset = 101 * S
    events = [
        NetEvent(onset - 30_000_000, 0, "host", EventKind.PORT_LEFT, "vch3", "labbr0"),
        NetEvent(onset - 30_000_000, 0, "host", EventKind.MAC_CHANGED, "labbr0", "", MacChange()),
        NetEvent(onset - 2 * S, 0, "host", EventKind.PORT_JOINED, "vch3", "labbr0"),
        NetEvent(onset - 2 * S, 0, "host", EventKind.MAC_CHANGED, "labbr0", "", MacChange()),
        NetEvent(onset, 0, "host", EventKind.MAC_CHANGED, "otherbr", "", MacChange()),
    ]
    series = {1: Series(1, "netns:c0", "dns:x/y/A", "x")}
    result = summarize_case(
        "unpinned",
        cols,
        series,
        sorted(events, key=lambda e: e.wall_ns),
        "labbr0",
        churn_cycles=3,
        seconds=4.0,
    )
    assert (result.probes, result.failed, result.mac_changes) == (80, 40, 2)
    [outage] = result.outages
    assert (outage.before, outage.port) == ("port-left", "vch3")
    assert outage.ms_before is not None and abs(outage.ms_before - 30.0) < 1e-6
    assert abs(outage.duration_s - 39 * 0.05) < 1e-9
    assert result.ci95[0] < 0.5 < result.ci95[1]
    stats = result.outage_stats()
    assert stats["count"] == 1 and stats["after_port_left"] == 1
    assert result.to_json()["failure_rate"] == 0.5


def test_no_failures_no_outages() -> None:
    result = summarize_case(
        "pinned",
        _cols([Outcome.OK] * 10),
        {1: Series(1, "t", "p", "s")},
        [],
        "labbr0",
        churn_cycles=0,
        seconds=1.0,
    )
    assert result.failed == 0 and result.outages == []
    assert result.outage_stats()["median_s"] is None
