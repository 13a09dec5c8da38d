"""Pure tests of the storm bound (per key and second, never losing a count),
of linking drops to failed probes, and of the drops command's tally."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netsleuth.drops.aggregate import Limiter
from netsleuth.drops.link import link_drops, probe_tuple
from netsleuth.drops.record import Drop
from netsleuth.drops.tally import DropTally
from netsleuth.model import DropDetail, EventKind, NetEvent, Outcome, ProbeResult
from netsleuth.watch.drops import drop_event

S = 1_000_000_000


def d(
    t: float, reason: str = "OTHERHOST", dev: str = "br0", count: int = 1, sport: int = 0
) -> Drop:
    return Drop(
        int(t * S), reason, "ip_rcv_core", 7, dev, "udp", "10.0.0.2", "10.0.9.9", sport, 53, count
    )


def test_below_the_rate_every_drop_passes_as_it_is() -> None:
    lim = Limiter(rate=3)
    drops = [d(0.1), d(0.2), d(0.3), d(1.1)]
    assert [lim.offer(x) for x in drops] == drops
    assert lim.flush() == []


def test_beyond_the_rate_one_aggregate_per_key_and_second() -> None:
    lim = Limiter(rate=2)
    passed = [lim.offer(d(0.1 + i / 100)) for i in range(10)]
    passed += [lim.offer(d(0.5, reason="NO_SOCKET"))]
    assert sum(p is not None for p in passed) == 3  # two OTHERHOST, one NO_SOCKET
    assert lim.flush(int(0.9 * S)) == []  # the window has not ended yet
    later = lim.offer(d(1.2))  # a new second: passes again
    assert later is not None
    (agg,) = lim.flush(int(1.5 * S))
    assert (agg.reason, agg.count, agg.saddr, agg.sport) == ("OTHERHOST", 8, "", 0)
    assert agg.mono_ns == int(0.19 * S)  # the latest drop it holds
    assert lim.seen == 12 and lim.aggregated == 8


def test_a_total_rate_bounds_many_keys() -> None:
    lim = Limiter(rate=100, total_rate=5)
    out = [lim.offer(d(0.5, dev=f"veth{i}")) for i in range(20)]
    assert sum(o is not None for o in out) == 5
    aggs = lim.flush()
    assert len(aggs) == 15 and all(a.count == 1 for a in aggs)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 5, allow_nan=False),
            st.sampled_from(["OTHERHOST", "NO_SOCKET", "NETFILTER_DROP"]),
            st.sampled_from(["br0", "eth0"]),
            st.integers(1, 3),
        ),
        max_size=300,
    ),
    st.integers(0, 5),
    st.integers(0, 20),
)
def test_the_counts_add_up_whatever_comes(
    items: list[tuple[float, str, str, int]], rate: int, total_rate: int
) -> None:
    lim = Limiter(rate=rate, total_rate=total_rate)
    out: list[Drop] = []
    for t, reason, dev, count in sorted(items):
        passed = lim.offer(d(t, reason, dev, count))
        if passed is not None:
            out.append(passed)
        out.extend(lim.flush(int(t * S)))
    out.extend(lim.flush())
    assert sum(x.count for x in out) == sum(i[3] for i in items)
    per_second: dict[tuple[int, tuple[str, str, int, str]], int] = {}
    for x in out:
        if x.count == 1 and x.sport == 0 and x.saddr:
            k = (x.mono_ns // S, x.key)
            per_second[k] = per_second.get(k, 0) + 1
    assert all(n <= rate for n in per_second.values())


def probe(
    t: float, outcome: Outcome = Outcome.TIMEOUT, answer: str = "from 10.0.0.2:4000"
) -> ProbeResult:
    return ProbeResult(
        int(t * S),
        int(t * S),
        "netns:c1",
        "dns:10.0.9.9/x.test/A",
        "10.0.9.9",
        outcome,
        None,
        answer,
    )


def ev(drop: Drop) -> NetEvent:
    return drop_event(drop, "host", 0)


def test_a_drop_of_the_probes_five_tuple_in_its_time_is_linked() -> None:
    assert probe_tuple(probe(1)) == ("udp", "10.0.0.2", 4000, "10.0.9.9", 53)
    events = [
        ev(d(1.001, sport=4000)),  # its query
        ev(d(1.001, sport=4001)),  # another port
        ev(d(9.0, sport=4000)),  # the port again, much later: another query
        ev(d(1.002, count=30)),  # an aggregate: no headers, not linkable
        NetEvent(int(1.001 * S), int(1.001 * S), "host", EventKind.NOTE),
    ]
    probes = [
        probe(1),
        probe(1, Outcome.OK, "1.2.3.4"),  # answered: not a failure
        probe(5, answer=""),  # no source recorded
        probe(20),  # failed, nothing dropped
    ]
    links = link_drops(probes, events, timeout_ns=S)
    assert [(round(lk.probe.mono_ns / S), len(lk.drops)) for lk in links] == [(1, 1), (20, 0)]
    detail = links[0].drops[0].detail
    assert isinstance(detail, DropDetail) and detail.sport == 4000 and detail.reason == "OTHERHOST"


def test_tcp_probes_match_their_syns_and_other_kinds_never() -> None:
    tcp = ProbeResult(
        S, S, "t", "tcp:10.0.9.9:443", "10.0.9.9", Outcome.TIMEOUT, None, "from 10.0.0.2:5000"
    )
    syn = Drop(
        S + 5, "NETFILTER_DROP", "nft_do_chain", 7, "eth0", "tcp", "10.0.0.2", "10.0.9.9", 5000, 443
    )
    resend = Drop(
        2 * S, "NETFILTER_DROP", "nft_do_chain", 7, "eth0", "tcp", "10.0.0.2", "10.0.9.9", 5000, 443
    )
    icmp = ProbeResult(
        S, S, "t", "icmp:10.0.9.9", "10.0.9.9", Outcome.TIMEOUT, None, "from 10.0.0.2:1"
    )
    (link,) = link_drops([tcp, icmp], [ev(syn), ev(resend)], timeout_ns=S)
    assert link.tuple5[0] == "tcp" and len(link.drops) == 2


def test_the_tally_counts_by_key_and_names_namespaces() -> None:
    tally = DropTally(lambda inode: {7: "blue"}.get(inode, f"netns:{inode}"))
    tally.add([d(0.1, sport=4000), d(0.2, count=40), d(0.3, reason="NO_SOCKET", sport=9)])
    rows = tally.top()
    assert [(r.reason, r.count, r.netns) for r in rows] == [
        ("OTHERHOST", 41, "blue"),
        ("NO_SOCKET", 1, "blue"),
    ]
    assert rows[0].example == "udp 10.0.0.2:4000 > 10.0.9.9:53"
    assert tally.total == 42 and tally.reasons["OTHERHOST"] == 41
    assert rows[0].to_json()["device"] == "br0"


def test_each_outage_lists_the_drops_seen_during_it() -> None:
    from netsleuth.drops.outages import DropCount, DropIndex

    def at(t: float, ns: str, reason: str = "OTHERHOST", count: int = 1) -> NetEvent:
        e = drop_event(d(t, reason, count=count), ns, 0)
        return NetEvent(int(t * S), int(t * S), ns, e.kind, e.ifname, e.subject, e.detail)

    index = DropIndex(
        [
            at(9.0, "host"),  # before the outage
            at(10.0, "host"),
            at(10.5, "host", count=20),
            at(11.0, "netns:c1", "NO_SOCKET"),
            at(11.0, "netns:c2", "NO_SOCKET"),  # another target's namespace
            at(13.2, "unknown", "NETFILTER_DROP"),  # within a timeout after its end
            at(20.0, "host"),  # long after
        ]
    )
    got = index.during("netns:c1", 10 * S, 12 * S)
    assert got == (
        DropCount("OTHERHOST", "ip_rcv_core", "host", "br0", 21),
        DropCount("NETFILTER_DROP", "ip_rcv_core", "unknown", "br0", 1),
        DropCount("NO_SOCKET", "ip_rcv_core", "netns:c1", "br0", 1),
    )
    assert got[0].text == "21× OTHERHOST by ip_rcv_core (host/br0)"
    assert not DropIndex([]) and DropIndex([]).during("x", 0, S) == ()
