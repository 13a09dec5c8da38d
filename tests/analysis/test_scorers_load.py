"""The load scorers on hand-built evidence: ``upstream-rate-limit`` (outages
in the seconds the host sends most) and ``resolver-overload`` (Udp
RcvbufErrors rising with the outages), each with look-alikes that must not
name it."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import pytest

from netsleuth.analysis import Episode, EpisodeDetail, Evidence, score_all, verdict_of
from netsleuth.analysis.counters import CounterRise, counter_evidence, weigh
from netsleuth.analysis.result import TargetStats
from netsleuth.analysis.scorers.load import (
    LoadSecond,
    load_test,
    onset_table,
    score_resolver_overload,
    score_upstream_rate_limit,
)
from netsleuth.analysis.states import StateEvidence
from netsleuth.model import CounterSample, EventKind, NetEvent, StateKind

S = 1_000_000_000
MS = 1_000_000
SPAN = 30
BURSTS = ((3, 6), (11, 14), (19, 22), (26, 29))  # seconds [start, end) of the builds
TARGETS = ("host", "netns:a")


def busy(second: int) -> bool:
    return any(a <= second < b for a, b in BURSTS)


def sample_events(
    sent: Sequence[int],
    received: Sequence[int],
    extra: dict[int, dict[str, int]] | None = None,
    netns: str = "host",
) -> list[NetEvent]:
    """One counters event per second: sample ``i`` covers ``(i, i + 1]`` s."""
    out = []
    for i, (tx, rx) in enumerate(zip(sent, received, strict=True)):
        deltas = {"link.eth0.tx_packets": tx, "link.eth0.rx_packets": rx}
        deltas.update((extra or {}).get(i, {}))
        deltas = {k: v for k, v in deltas.items() if v > 0}
        t = (i + 1) * S
        out.append(NetEvent(t, t, netns, EventKind.COUNTERS, "", "", CounterSample(1.0, deltas)))
    return out


def outage(target: str, second: float, failed: int = 10) -> Episode:
    start = int(second * S) + 100 * MS
    return Episode(target, start, start + 400 * MS, failed, failed + 2, start + 450 * MS)


def evidence(
    events: Iterable[NetEvent],
    episodes: Sequence[Episode],
    *,
    control: str | None = "host",
    targets: Sequence[str] = TARGETS,
    states: dict[str, StateEvidence] | None = None,
) -> Evidence:
    stats = tuple(
        TargetStats(t, 20 * SPAN, sum(e.failed for e in episodes if e.target == t), 0, 0, 0, 0, 0)
        for t in targets
    )
    return Evidence(
        episodes=tuple(EpisodeDetail(e, (), None) for e in episodes),
        correlations=(),
        states=states or {},
        bridges=(),
        targets=stats,
        localisation="everywhere",
        control=control,
        dns_only=True,
        counters=counter_evidence(list(events), episodes, SPAN * S),
    )


def bursty_load(scale: float = 1.0) -> tuple[list[int], list[int]]:
    rng = random.Random(1)
    sent = [int(scale * (840 if busy(i) else rng.randint(36, 46))) for i in range(SPAN)]
    received = [int(scale * (200 if busy(i) else rng.randint(36, 46))) for i in range(SPAN)]
    return sent, received


def burst_outages(targets: Sequence[str] = TARGETS) -> list[Episode]:
    return [outage(t, s) for s in range(SPAN) if busy(s) for t in targets]


def named(ev: Evidence) -> dict[str, str]:
    return {s.cause: s.confidence for s in score_all(ev) if s.named}


# -- upstream-rate-limit ----------------------------------------------------------------


def test_outages_in_the_busy_seconds_of_the_uplink_name_the_rate_limit() -> None:
    ev = evidence(sample_events(*bursty_load()), burst_outages())
    score = score_upstream_rate_limit(ev)
    assert score.named and score.confidence == "high", score
    assert score.p_value is not None and score.p_value < 1e-5
    text = " | ".join(score.evidence_for)
    assert "outages began in 12 of 12 busy seconds" in text
    assert "at least 2 times its quiet 40 packets/s out of eth0" in text
    assert "a median 840 packets/s in the seconds in which an outage began" in text
    assert "but in 0 of 18 quiet ones" in text
    assert "the host control (host) failed in busy seconds too" in text
    assert "answers kept coming" in text
    v = verdict_of(score_all(ev), ev)
    assert v.cause == "upstream-rate-limit", v
    assert "eth0" in v.fix


def test_the_busy_level_is_relative_to_the_run_never_an_absolute_number() -> None:
    for scale in (0.05, 1.0, 40.0):
        ev = evidence(sample_events(*bursty_load(scale)), burst_outages())
        assert score_upstream_rate_limit(ev).named, scale


def test_random_loss_at_a_steady_load_is_not_a_rate_limit() -> None:
    rng = random.Random(2)
    sent = [rng.randint(36, 46) for _ in range(SPAN)]
    eps = [outage(t, s) for s in range(SPAN) for t in TARGETS if rng.random() < 0.3]
    ev = evidence(sample_events(sent, sent), eps)
    score = score_upstream_rate_limit(ev)
    assert not score.named
    assert "fewer than 3 seconds" in score.evidence_against[0]
    assert "upstream-rate-limit" not in named(ev)


def test_outages_that_ignore_the_bursts_are_not_a_rate_limit() -> None:
    quiet = [s for s in range(SPAN) if not busy(s)]
    eps = [outage(t, s) for s in quiet[::3] for t in TARGETS]
    eps += [outage(t, s) for s in (4, 12) for t in TARGETS]  # a few fall in busy seconds
    ev = evidence(sample_events(*bursty_load()), eps)
    score = score_upstream_rate_limit(ev)
    assert not score.named, score
    assert any("not significantly likelier" in a for a in score.evidence_against)


def test_a_local_drop_counter_in_the_busy_seconds_is_the_hosts_own_loss() -> None:
    drops = {i: {"snmp.Udp.RcvbufErrors": 900, "snmp.Udp.InErrors": 900} for i in range(SPAN)}
    drops = {i: d for i, d in drops.items() if busy(i)}
    ev = evidence(sample_events(*bursty_load(), extra=drops), burst_outages())
    score = score_upstream_rate_limit(ev)
    assert not score.named
    assert any("snmp.Udp.RcvbufErrors rose in 12 of the 12" in a for a in score.evidence_against)
    assert verdict_of(score_all(ev), ev).cause == "resolver-overload"


def test_nothing_coming_back_while_busy_is_an_outage_not_a_limit() -> None:
    sent, received = bursty_load()
    received = [0 if busy(i) else r for i, r in enumerate(received)]
    ev = evidence(sample_events(sent, received), burst_outages())
    score = score_upstream_rate_limit(ev)
    assert not score.named
    assert any("nothing got through" in a for a in score.evidence_against)


def test_one_container_failing_in_busy_seconds_is_not_the_whole_host() -> None:
    targets = ("host", "netns:a", "netns:b", "netns:c")
    ev = evidence(sample_events(*bursty_load()), burst_outages(["netns:a"]), targets=targets)
    score = score_upstream_rate_limit(ev)
    assert not score.named
    assert any("did not fail in busy seconds" in a for a in score.evidence_against)
    # every container but not the host control: the host's own queries were not
    # throttled, so the limit is not on the host's total rate (the flap's busy churn)
    ev = evidence(sample_events(*bursty_load()), burst_outages(targets[1:]), targets=targets)
    assert not score_upstream_rate_limit(ev).named
    # with the control hit too, it is
    ev = evidence(sample_events(*bursty_load()), burst_outages(targets), targets=targets)
    assert score_upstream_rate_limit(ev).named


def test_outages_a_recorded_state_explains_do_not_count() -> None:
    eps = burst_outages()
    nat = StateEvidence(
        family="nat-missing",
        states=(StateKind.NAT_MISSING,),
        intervals=(),
        outages=len(eps),
        aligned=(),
        inside=len(eps),
        quiet=0,
        unexplained=0,
        chance=0.01,
        p_value=1.0,
        families_tested=1,
        explained=frozenset((e.target, e.start_ns) for e in eps),
    )
    ev = evidence(sample_events(*bursty_load()), eps, states={"nat-missing": nat})
    assert not score_upstream_rate_limit(ev).named


def test_without_uplink_packet_counts_nothing_is_said() -> None:
    ev = evidence([], burst_outages())
    score = score_upstream_rate_limit(ev)
    assert not score.named and score.p_value is None


def test_load_test_and_onset_table_are_plain_arithmetic() -> None:
    table = onset_table([True] * 4 + [False] * 6, [True, True, True, False] + [False] * 6)
    assert (table.flagged, table.other, table.flagged_onsets, table.other_onsets) == (4, 6, 3, 0)
    assert table.relative_risk == float("inf")
    assert table.p_value == pytest.approx(1 / 30)  # C(4,3)*C(6,0)/C(10,3)
    assert not table.strong()  # 1/30 > ALPHA
    seconds = [
        LoadSecond(i * S, (i + 1) * S, 1000.0 if i in (2, 3, 4) else 50.0, 0.0) for i in range(10)
    ]
    t = load_test(seconds, [outage("host", 2), outage("host", 3)])
    assert t is not None and t.quiet_rate == 50.0
    assert t.busy == (False, False, True, True, True, False, False, False, False, False)
    assert (t.table.flagged_onsets, t.table.other_onsets) == (2, 0)
    assert load_test(seconds[:5], []) is None  # too few seconds to split


# -- resolver-overload ------------------------------------------------------------------


def test_receive_buffer_drops_with_the_outages_name_the_overloaded_resolver() -> None:
    drops = {i: {"snmp.Udp.RcvbufErrors": 1100, "snmp.Udp.InErrors": 1100} for i in range(SPAN)}
    drops = {i: d for i, d in drops.items() if busy(i)}
    ev = evidence(sample_events(*bursty_load(), extra=drops), burst_outages())
    score = score_resolver_overload(ev)
    assert score.named and score.confidence == "high", score
    text = " | ".join(score.evidence_for)
    assert "snmp.Udp.RcvbufErrors rose by 13200 in 12 samples (host)" in text
    assert "outages began in 12 of the 12 seconds in which it rose" in text
    assert "up to 1100 datagrams dropped in one sample (host)" in text
    v = verdict_of(score_all(ev), ev)
    assert v.cause == "resolver-overload"
    assert v.title.startswith("a resolver on this host drops queries")


def test_receive_buffer_drops_away_from_the_outages_name_nothing() -> None:
    quiet = [s for s in range(SPAN) if not busy(s)]
    drops = {s: {"snmp.Udp.RcvbufErrors": 50} for s in quiet[::4]}
    ev = evidence(sample_events(*bursty_load(), extra=drops), burst_outages())
    score = score_resolver_overload(ev)
    assert not score.named, score
    assert score.evidence_against


def test_no_receive_buffer_drops_name_nothing() -> None:
    ev = evidence(sample_events(*bursty_load()), burst_outages())
    score = score_resolver_overload(ev)
    assert not score.named
    assert score.evidence_against == ("no snmp.Udp.RcvbufErrors rise was recorded",)


def test_without_a_grid_of_seconds_the_counter_rule_alone_decides() -> None:
    # drops in a container's namespace and no uplink counts: only weigh() can tell
    rises = tuple(
        CounterRise("netns:a", "snmp.Udp.RcvbufErrors", s * S, (s + 1) * S, 500, {})
        for s in (3, 20, 40, 60, 80, 100)
    )
    eps = [outage("netns:a", s) for s in (3, 20, 40, 60, 80, 100)]
    ev = evidence([], eps)
    ev = Evidence(
        ev.episodes,
        (),
        {},
        (),
        ev.targets,
        "namespaces",
        "host",
        True,
        {"snmp.Udp.RcvbufErrors": weigh("snmp.Udp.RcvbufErrors", rises, eps, 120 * S)},
    )
    score = score_resolver_overload(ev)
    assert score.named, score
    assert "(netns:a)" in score.evidence_for[0]
