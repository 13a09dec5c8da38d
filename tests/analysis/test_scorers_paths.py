"""The path scorers (rp-filter, mtu-blackhole, resolver-unreachable) on
hand-built evidence: each names its cause from what watch records, and a
look-alike of another cause does not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from scipy.stats import binom

from netsleuth.analysis.correlate import ALPHA
from netsleuth.analysis.counters import CounterRise, rises_in_outages, tail, weigh
from netsleuth.analysis.episodes import Episode
from netsleuth.analysis.evidence import Evidence, SeriesStats
from netsleuth.analysis.result import EpisodeDetail
from netsleuth.analysis.scorers.paths import (
    ICMP_COUNTER,
    NOPORTS_COUNTER,
    RP_COUNTER,
    score_mtu_blackhole,
    score_resolver_unreachable,
    score_rp_filter,
)
from netsleuth.analysis.scoring import score_all, verdict_of
from netsleuth.causes import CAUSES
from netsleuth.probes.spec import parse_probe

S = 1_000_000_000
MS = 1_000_000
NS = "netns:c0"
SMALL = "dns:10.1.0.2/www.example.test/A"
BIG = "dns:10.1.0.2/big.example.test/TXT/edns=4096"


def outage(start_s: float, seconds: float, target: str = NS) -> Episode:
    start = int(start_s * S)
    end = start + int(seconds * S)
    n = int(seconds * S // (50 * MS)) + 1
    return Episode(target, start, end, n, n, end + 50 * MS)


def rise(end_s: float, delta: int = 5, counter: str = RP_COUNTER, ns: str = "host") -> CounterRise:
    """A sample of 1 s ending at ``end_s`` in which ``counter`` rose."""
    end = int(end_s * S)
    return CounterRise(ns, counter, end - S, end, delta, {})


def ev(
    episodes: Sequence[Episode] = (),
    rises: Sequence[CounterRise] = (),
    *,
    span_s: float = 25.0,
    series: Sequence[SeriesStats] = (),
    resolvers: Mapping[str, tuple[str, ...]] | None = None,
    rp_filter: Mapping[str, int] | None = None,
    mtu: Mapping[str, int] | None = None,
    control: str | None = "host",
    localisation: str = "namespaces",
) -> Evidence:
    span = int(span_s * S)
    families: dict[str, list[CounterRise]] = {}
    for r in rises:
        families.setdefault(r.counter, []).append(r)
    counters = {f: weigh(f, rs, list(episodes), span) for f, rs in families.items()}
    return Evidence(
        episodes=tuple(EpisodeDetail(e, (), None) for e in episodes),
        correlations=(),
        states={},
        bridges=(),
        targets=(),
        localisation=localisation,
        control=control,
        dns_only=True,
        counters=counters,
        series=tuple(series),
        resolvers=dict(resolvers or {}),
        rp_filter=dict(rp_filter or {}),
        mtu=dict(mtu or {}),
        span_ns=span,
    )


def stream(
    probe: str, failed: int, attempts: int = 400, target: str = NS, kind: str = "timeout"
) -> SeriesStats:
    server = parse_probe(probe).server
    return SeriesStats(target, probe, server, attempts, failed, {kind: failed} if failed else {})


def named(e: Evidence) -> list[str]:
    return [s.cause for s in score_all(e) if s.named]


# -- the counter read the other way round ------------------------------------------------


def test_tail_is_the_binomial_tail_for_equal_chances_and_exact_for_unequal_ones() -> None:
    for k in range(5):
        assert tail([0.3] * 4, k) == pytest.approx(float(binom.sf(k - 1, 4, 0.3)))
    assert tail([0.5, 0.2], 2) == pytest.approx(0.1)
    assert tail([0.5, 0.2], 1) == pytest.approx(1 - 0.5 * 0.8)
    assert tail([], 1) == 0.0


def test_back_to_back_rises_are_one_stretch_that_met_its_outage() -> None:
    eps = [outage(3.8, 0.3), outage(12.5, 0.3)]
    back = rises_in_outages(
        weigh(RP_COUNTER, [rise(4), rise(5), rise(13)], eps, 25 * S), eps, 25 * S
    )
    assert (back.stretches, back.met, back.all_met) == (2, 2, True)
    # a stretch of 2 s widened by the tolerance around two outages of 0.35 s
    assert back.cover == pytest.approx((2 * (2 + 0.35 + 0.5)) / 25, abs=0.01)
    assert back.p_value is not None and back.p_value < 0.2


# -- rp-filter ----------------------------------------------------------------------------

# short outages now and then over a minute, as a flipping return path makes them
ASYMMETRIC = [3.2, 10.6, 17.1, 24.4, 31.7, 38.2, 46.5, 53.3]
STRICT = {"all": 1, "uplink0": 0, "uplink1": 1, "br0": 0, "lo": 0}


def rp_case(rp_filter: Mapping[str, int] = STRICT) -> Evidence:
    eps = [outage(t, 0.3) for t in ASYMMETRIC]
    rises = [rise(int(t) + 1) for t in ASYMMETRIC]
    return ev(eps, rises, span_s=60.0, rp_filter=rp_filter)


def test_drops_by_reverse_path_filtering_during_every_outage_name_rp_filter() -> None:
    e = rp_case()
    score = score_rp_filter(e)
    assert score.named and score.confidence in ("medium", "high"), score
    assert score.p_value is not None and score.p_value < ALPHA
    text = " | ".join(score.evidence_for)
    assert "IPReversePathFilter rose by 40 in 8 samples (host)" in text
    assert "8 of 8 stretches in which it rose came during outages" in text
    assert "rp_filter is strict (1) in the host namespace on br0, uplink0, uplink1 (all=1)" in text
    assert "netsleuth fix rp-filter uplink1 --apply" in score.fix  # its own setting is strict
    v = verdict_of(score_all(e), e)
    assert v.cause == "rp-filter", v
    assert v.explanation == CAUSES["rp-filter"].explanation


def test_with_only_all_strict_the_fix_is_for_all() -> None:
    score = score_rp_filter(rp_case(rp_filter={"all": 1, "eth0": 0}))
    assert score.named
    assert "netsleuth fix rp-filter all --apply" in score.fix


def test_a_short_record_whose_every_drop_came_with_an_outage_names_it_with_low_confidence() -> None:
    eps = [outage(2.2, 0.3), outage(6.6, 0.3)]
    e = ev(eps, [rise(3), rise(7)], span_s=9.0)
    score = score_rp_filter(e)
    assert score.p_value is not None and score.p_value >= ALPHA  # too short to be improbable
    assert (score.named, score.confidence) == (True, "low")


def test_no_rise_or_drops_that_do_not_follow_the_outages_do_not_name_it() -> None:
    eps = [outage(t, 0.3) for t in ASYMMETRIC]
    assert not score_rp_filter(ev(eps)).named
    assert (
        "no netstat.TcpExt.IPReversePathFilter rise" in score_rp_filter(ev(eps)).evidence_against[0]
    )
    # a host that drops spoofed packets all along: the counter rises every other second
    background = [rise(t) for t in range(2, 61, 2)]
    score = score_rp_filter(ev(eps, background, span_s=60.0))
    assert not score.named, score
    assert any("stretches of rises came with no outage" in x for x in score.evidence_against)
    # one outage of many came with drops
    many = [outage(t, 0.3) for t in (1.2, 4.2, 7.2, 10.2, 13.2, 16.2, 19.2, 22.2)]
    assert not score_rp_filter(ev(many, [rise(2)])).named


def test_other_counters_do_not_name_rp_filter() -> None:
    eps = [outage(t, 0.3) for t in ASYMMETRIC]
    rises = [rise(int(t) + 1, counter="snmp.Udp.RcvbufErrors") for t in ASYMMETRIC]
    assert "rp-filter" not in named(ev(eps, rises, span_s=60.0, rp_filter=STRICT))


# -- mtu-blackhole ---------------------------------------------------------------------------

MTUS = {"lo": 65536, "eth0": 1500, "br0": 1400, "veth1": 1500}


def mtu_case(mtu: Mapping[str, int] | None = None, rises: Sequence[CounterRise] = ()) -> Evidence:
    series = [
        stream(SMALL, 0),
        stream(BIG, 400),
        stream(SMALL, 0, target="host"),
        stream(BIG, 0, target="host"),
    ]
    return ev(rises=rises, series=series, mtu=mtu)


def test_large_answers_lost_while_small_ones_pass_name_mtu_blackhole() -> None:
    e = mtu_case(mtu=MTUS, rises=[rise(t, counter=ICMP_COUNTER) for t in range(1, 25)])
    score = score_mtu_blackhole(e)
    assert score.named and score.confidence == "high", score
    assert score.p_value is not None and score.p_value < 1e-100
    text = " | ".join(score.evidence_for)
    assert "netns:c0: 400 of 400 queries allowing a 4096-byte answer" in text
    assert "0 of 400 smaller ones to the same server" in text
    assert "the host control (host) got 400 of 400 of the same large answers" in text
    assert "snmp.Icmp.OutDestUnreachs rose by 120 in the host namespace" in text
    assert "MTUs in the host namespace differ: br0 1400, while others have 1500" in text
    assert "the narrow hop: br0" in score.fix
    assert verdict_of(score_all(e), e).cause == "mtu-blackhole"


def test_the_split_alone_is_at_most_medium() -> None:
    series = [stream(SMALL, 0), stream(BIG, 400)]  # no control, no counter, no MTU facts
    score = score_mtu_blackhole(ev(series=series, control=None))
    assert (score.named, score.confidence) == (True, "medium")
    assert "the narrowest hop" in score.fix


def test_the_control_losing_them_too_puts_the_hop_beyond_the_host() -> None:
    series = [stream(SMALL, 0), stream(BIG, 400), stream(BIG, 390, target="host")]
    score = score_mtu_blackhole(ev(series=series))
    assert score.named
    assert any(
        "lost them too (390 of 400): the narrow hop lies beyond" in x for x in score.evidence_for
    )


@pytest.mark.parametrize(
    "series",
    [
        # both fail alike: a path or NAT problem, not the size
        [stream(SMALL, 380), stream(BIG, 400)],
        # the large one is refused or fails at the server: an answer, not a lost datagram
        [stream(SMALL, 0), stream(BIG, 400, kind="servfail")],
        [stream(SMALL, 0), stream(BIG, 400, kind="refused")],
        # no EDNS: its answer can never exceed 512 bytes
        [stream(SMALL, 0), stream("dns:10.1.0.2/big.example.test/TXT", 400)],
        # another server
        [stream("dns:10.9.0.2/www.example.test/A", 0), stream(BIG, 400)],
        # too few attempts to say anything
        [stream(SMALL, 0, attempts=5), stream(BIG, 5, attempts=5)],
        # only some large answers lost: loss, not a size limit
        [stream(SMALL, 0), stream(BIG, 40)],
        # a single probe (the default watch)
        [stream(SMALL, 120)],
    ],
)
def test_look_alikes_do_not_name_mtu_blackhole(series: list[SeriesStats]) -> None:
    assert not score_mtu_blackhole(ev(series=series)).named


# -- resolver-unreachable -----------------------------------------------------------------


def resolver_case() -> Evidence:
    series = [
        stream("dns:127.0.0.53/www.example.test/A", 450, 450, kind="refused"),
        stream("dns:10.1.0.2/www.example.test/A", 0, 460, target="host"),
    ]
    resolvers = {NS: ("127.0.0.53",), "host": ("10.1.0.2",)}
    refused = [rise(t, 20, NOPORTS_COUNTER, NS) for t in range(1, 23)]
    return ev([outage(0.5, 22.0)], refused, series=series, resolvers=resolvers, span_s=23.0)


def test_a_loopback_stub_in_a_namespace_names_resolver_unreachable() -> None:
    e = resolver_case()
    score = score_resolver_unreachable(e)
    assert score.named and score.confidence == "high", score
    assert score.p_value is not None and score.p_value < 1e-100
    text = " | ".join(score.evidence_for)
    assert "netns:c0: 450 of 450 queries to 127.0.0.53, the nameserver of its resolv.conf" in text
    assert "refused at once: nothing listens on that address there" in text
    assert "127.0.0.53 is a loopback address" in text
    assert "the host control (host) got answers from 10.1.0.2 (460 of 460)" in text
    assert "snmp.Udp.NoPorts rose by 440 in netns:c0: the queries reached a port" in text
    assert "point netns:c0 at a resolver it can reach" in score.fix
    assert verdict_of(score_all(e), e).cause == "resolver-unreachable"


def test_an_address_only_the_host_reaches_names_it_too() -> None:
    series = [
        stream("dns:10.7.0.1/www.example.test/A", 300, 300),
        stream("dns:10.1.0.2/www.example.test/A", 1, 300, target="host"),
    ]
    score = score_resolver_unreachable(ev(series=series, resolvers={NS: ("10.7.0.1",)}))
    assert score.named
    assert any("timed out: nothing answered" in x for x in score.evidence_for)


def test_without_a_control_only_a_loopback_address_names_it() -> None:
    loop = [stream("dns:127.0.0.53/www.example.test/A", 300, 300, kind="refused")]
    score = score_resolver_unreachable(ev(series=loop, control=None))
    assert (score.named, score.confidence, score.p_value) == (True, "low", None)
    other = [stream("dns:10.7.0.1/www.example.test/A", 300, 300)]
    assert not score_resolver_unreachable(ev(series=other, control=None)).named


@pytest.mark.parametrize(
    ("series", "resolvers"),
    [
        # the namespace's resolver is the host's own: the path (NAT, forward) is cut
        (
            [
                stream("dns:10.1.0.2/www.example.test/A", 300, 300),
                stream("dns:10.1.0.2/www.example.test/A", 0, 300, target="host"),
            ],
            {NS: ("10.1.0.2",)},
        ),
        # a resolver that fails now and then is not unreachable
        (
            [
                stream("dns:127.0.0.53/www.example.test/A", 90, 300, kind="refused"),
                stream("dns:10.1.0.2/www.example.test/A", 0, 300, target="host"),
            ],
            {NS: ("127.0.0.53",)},
        ),
        # a server given on the command line, not the namespace's resolver
        (
            [
                stream("dns:10.7.0.1/www.example.test/A", 300, 300),
                stream("dns:10.1.0.2/www.example.test/A", 0, 300, target="host"),
            ],
            {NS: ("10.1.0.2",)},
        ),
        # the host fails as well: nothing to contrast with
        (
            [
                stream("dns:10.7.0.1/www.example.test/A", 300, 300),
                stream("dns:10.1.0.2/www.example.test/A", 300, 300, target="host"),
            ],
            {},
        ),
    ],
)
def test_look_alikes_do_not_name_resolver_unreachable(
    series: list[SeriesStats], resolvers: dict[str, tuple[str, ...]]
) -> None:
    assert not score_resolver_unreachable(ev(series=series, resolvers=resolvers)).named


def test_each_scorer_is_silent_on_the_others_evidence() -> None:
    cases = {
        "rp-filter": rp_case(),
        "mtu-blackhole": mtu_case(),
        "resolver-unreachable": resolver_case(),
    }
    for cause, e in cases.items():
        assert named(e) == [cause], (cause, named(e))
