"""The kernel-table scorers on hand-built evidence: ``conntrack-race``
(ct.insert_failed with single lost queries), ``conntrack-full`` (ct.drop /
ct.early_drop with the table at its maximum) and ``neighbour-table-full``
(arp.table_fulls / arp.unresolved_discards), each with look-alikes of the
others that must not name it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from netsleuth.analysis import Episode, EpisodeDetail, Evidence, score_all, verdict_of
from netsleuth.analysis.counters import CounterRise, counter_evidence, weigh
from netsleuth.analysis.result import TargetStats
from netsleuth.analysis.scorers.kernel import (
    score_conntrack_full,
    score_conntrack_race,
    score_neighbour_table_full,
)
from netsleuth.model import CounterSample, EventKind, NetEvent

S = 1_000_000_000
MS = 1_000_000
SPAN = 90
HOST = "host"
NS = ("netns:a", "netns:b")
FULL = {"ct.count": 65_536, "ct.max": 65_536}
EMPTY = {"ct.count": 700, "ct.max": 262_144}

# seconds with a lost query (the race), and bursts [start, end) (the tables)
SINGLES = (4, 11, 17, 23, 31, 38, 46, 53, 61, 68, 76, 84)
BURSTS = ((5, 7), (18, 19), (31, 33), (44, 45), (57, 59), (70, 71), (83, 85))


def samples(
    rises: Mapping[int, Mapping[str, int]],
    levels: Mapping[str, int] | None = None,
    netns: str = HOST,
) -> list[NetEvent]:
    """One counters event for each second with a rise: it covers ``(i, i + 1]`` s."""
    out = []
    for i, deltas in sorted(rises.items()):
        t = (i + 1) * S
        sample = CounterSample(1.0, dict(deltas), dict(levels or {}))
        out.append(NetEvent(t, t, netns, EventKind.COUNTERS, "", "", sample))
    return out


def single(target: str, second: float) -> Episode:
    start = int(second * S) + 300 * MS
    return Episode(target, start, start, 1, 1, start + 50 * MS)


def burst(target: str, start_s: float, end_s: float) -> Episode:
    start, end = int(start_s * S) + 100 * MS, int(end_s * S) - 100 * MS
    failed = (end - start) // (50 * MS)
    return Episode(target, start, end, failed, failed, end + 50 * MS)


def evidence(
    events: Iterable[NetEvent],
    episodes: Sequence[Episode],
    *,
    localisation: str,
    targets: Sequence[str] = (*NS, HOST),
) -> Evidence:
    stats = tuple(
        TargetStats(t, 20 * SPAN, sum(e.failed for e in episodes if e.target == t), 0, 0, 0, 0, 0)
        for t in targets
    )
    return Evidence(
        episodes=tuple(EpisodeDetail(e, (), None) for e in episodes),
        correlations=(),
        states={},
        bridges=(),
        targets=stats,
        localisation=localisation,
        control=HOST,
        dns_only=True,
        counters=counter_evidence(list(events), episodes, SPAN * S),
        span_ns=SPAN * S,
    )


def named(ev: Evidence) -> list[str]:
    return [s.cause for s in score_all(ev) if s.named]


def race_losses() -> list[Episode]:
    return [single(NS[i % 2], s) for i, s in enumerate(SINGLES)]


def race_counters(seconds: Iterable[int] = SINGLES) -> list[NetEvent]:
    """A lost race counts insert_failed and drop, the table nearly empty."""
    return samples({s: {"ct.insert_failed": 1, "ct.drop": 1} for s in seconds}, EMPTY)


def table_outages() -> list[Episode]:
    return [burst(t, a, b) for a, b in BURSTS for t in (*NS, HOST)]


def burst_rises(deltas: Mapping[str, int]) -> dict[int, Mapping[str, int]]:
    return {s: deltas for a, b in BURSTS for s in range(a, b)}


# -- conntrack-race -----------------------------------------------------------------------


def test_insert_failed_with_single_lost_queries_names_the_race() -> None:
    ev = evidence(race_counters(), race_losses(), localisation="namespaces")
    score = score_conntrack_race(ev)
    assert score.named and score.confidence == "high", score
    assert score.p_value is not None and score.p_value < 1e-4
    text = " | ".join(score.evidence_for)
    assert "ct.insert_failed rose by 12 in 12 samples (host)" in text
    assert "12 of 12 independent outages came while it rose" in text
    assert "12 of 12 outages were a single lost query" in text
    assert "at most 0 % full" in text
    assert named(ev) == ["conntrack-race"]  # ct.drop rose too, but the table was empty
    assert verdict_of(score_all(ev), ev).cause == "conntrack-race"


def test_insert_failed_at_other_times_does_not_name_the_race() -> None:
    elsewhere = [s + 5 for s in SINGLES]  # never with a lost query
    long_outages = [burst(NS[0], s, s + 2) for s in SINGLES]
    ev = evidence(race_counters(elsewhere), long_outages, localisation="namespaces")
    score = score_conntrack_race(ev)
    assert not score.named, score
    assert "conntrack-race" not in named(ev)


def test_the_pattern_alone_is_still_a_low_candidate_and_says_what_is_missing() -> None:
    ev = evidence([], race_losses(), localisation="namespaces")
    score = score_conntrack_race(ev)
    assert (score.named, score.confidence, score.p_value) == (True, "low", None)
    # counters recorded (the host's own traffic) but no insert_failed: said so
    load = samples({s: {"link.eth0.tx_packets": 40} for s in range(SPAN)})
    score = score_conntrack_race(evidence(load, race_losses(), localisation="namespaces"))
    assert score.named and score.confidence == "low"
    assert any("ct.insert_failed did not rise" in a for a in score.evidence_against)


def test_single_losses_in_every_target_are_no_race_without_the_counter() -> None:
    losses = [single(t, s) for s in SINGLES for t in (*NS, HOST)]
    ev = evidence([], losses, localisation="everywhere")
    assert not score_conntrack_race(ev).named


# -- conntrack-full -----------------------------------------------------------------------


def full_counters(levels: Mapping[str, int] = FULL) -> list[NetEvent]:
    return samples(burst_rises({"ct.drop": 400, "ct.early_drop": 40}), levels)


def test_drops_with_the_table_at_its_maximum_name_conntrack_full() -> None:
    ev = evidence(full_counters(), table_outages(), localisation="everywhere")
    score = score_conntrack_full(ev)
    assert score.named and score.confidence in ("high", "medium"), score
    assert score.p_value is not None and score.p_value < 0.01
    text = " | ".join(score.evidence_for)
    assert "ct.drop rose by" in text
    assert "ct.count reached 65536 of ct.max 65536 (100 %) beside the rises" in text
    # the host control failed in every burst: upstream is not named for it
    ranked = score_all(ev)
    assert [s.cause for s in ranked if s.named] == ["conntrack-full"]
    upstream = next(s for s in ranked if s.cause == "upstream-dns")
    assert any("fails the host's own traffic too" in a for a in upstream.evidence_against)
    assert verdict_of(ranked, ev).cause == "conntrack-full"


def test_drops_with_a_nearly_empty_table_are_not_conntrack_full() -> None:
    ev = evidence(full_counters(EMPTY), table_outages(), localisation="everywhere")
    score = score_conntrack_full(ev)
    assert not score.named, score
    assert any("at most 0 % full" in a for a in score.evidence_against)
    # without any level beside the rises it cannot tell either
    ev = evidence(full_counters({}), table_outages(), localisation="everywhere")
    score = score_conntrack_full(ev)
    assert not score.named
    assert any("no ct.count level" in a for a in score.evidence_against)


def test_a_full_table_while_nothing_fails_is_not_the_cause() -> None:
    quiet = [burst(NS[0], 2, 3)]  # one outage, away from every burst
    ev = evidence(full_counters(), quiet, localisation="namespaces")
    assert not score_conntrack_full(ev).named


def test_the_race_does_not_name_conntrack_full_nor_a_full_table_the_race() -> None:
    race = evidence(race_counters(), race_losses(), localisation="namespaces")
    assert not score_conntrack_full(race).named
    full = evidence(full_counters(), table_outages(), localisation="everywhere")
    assert not score_conntrack_race(full).named


# -- neighbour-table-full -----------------------------------------------------------------


def neigh_counters() -> list[NetEvent]:
    rises = burst_rises({"arp.table_fulls": 30, "arp.forced_gc_runs": 31})
    rises.update({s: {**rises.get(s, {}), "arp.unresolved_discards": 2} for s, _ in BURSTS})
    return samples(rises, {"arp.entries": 1024})


def test_refused_neighbour_entries_during_outages_name_the_full_table() -> None:
    ev = evidence(neigh_counters(), table_outages(), localisation="everywhere")
    score = score_neighbour_table_full(ev)
    assert score.named and score.confidence in ("high", "medium"), score
    text = " | ".join(score.evidence_for)
    assert "arp.table_fulls rose by" in text
    assert "arp.forced_gc_runs rose by" in text
    assert "the table held up to 1024 entries beside the rises" in text
    assert named(ev) == ["neighbour-table-full"]


def test_forced_collection_alone_is_no_overflow() -> None:
    # above gc_thresh2 the kernel collects by force every 5 s: no entry refused
    gc = samples({s: {"arp.forced_gc_runs": 1} for s in range(0, SPAN, 5)}, {"arp.entries": 600})
    ev = evidence(gc, table_outages(), localisation="everywhere")
    score = score_neighbour_table_full(ev)
    assert not score.named
    assert any(
        "no arp.table_fulls / arp.unresolved_discards rise" in a for a in score.evidence_against
    )


def test_refusals_away_from_the_outages_do_not_name_it() -> None:
    rises = {s + 4: {"arp.table_fulls": 30} for s, _ in BURSTS}  # between the bursts
    ev = evidence(samples(rises), table_outages(), localisation="everywhere")
    assert not score_neighbour_table_full(ev).named


def test_the_two_full_tables_are_told_apart() -> None:
    neigh = evidence(neigh_counters(), table_outages(), localisation="everywhere")
    assert not score_conntrack_full(neigh).named
    assert "conntrack-full" not in named(neigh)
    full = evidence(full_counters(), table_outages(), localisation="everywhere")
    assert not score_neighbour_table_full(full).named
    assert "neighbour-table-full" not in named(full)


# -- how rises are weighed ------------------------------------------------------------------


def rise(start_s: float, end_s: float) -> CounterRise:
    return CounterRise(HOST, "ct.drop", int(start_s * S), int(end_s * S), 1, {})


def test_a_burst_seen_by_consecutive_samples_covers_its_time_once() -> None:
    outages = [burst(NS[0], a, b) for a, b in BURSTS]
    whole = [rise(a, b + 1) for a, b in BURSTS]  # one rise per burst
    split = [rise(s, s + 1) for a, b in BURSTS for s in range(a, b + 1)]  # one per second
    one, many = (
        weigh("ct.drop", whole, outages, SPAN * S),
        weigh("ct.drop", split, outages, SPAN * S),
    )
    assert one.met == many.met == len(BURSTS)
    assert one.p_value == many.p_value
