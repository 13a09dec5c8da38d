"""Kernel drop reasons as evidence (pure): the drop record built from drop
events, outages and failed probes (counts, places, links, the tests of
chance, the cost under a storm), and each cause that takes a drop reason as
evidence, with a positive case and a look-alike negative one."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from netsleuth.analysis import FAMILIES, BridgeState, Episode, EpisodeDetail, Evidence, align
from netsleuth.analysis.drops import DropRecord, drop_record
from netsleuth.analysis.engine import analyze_data
from netsleuth.analysis.evidence import SeriesStats
from netsleuth.analysis.result import TargetStats
from netsleuth.analysis.scorers import drop_strength
from netsleuth.analysis.scoring import SCORERS, score_all
from netsleuth.analysis.states import StateInterval
from netsleuth.drops.link import link_drops
from netsleuth.model import (
    DropDetail,
    EventKind,
    NetEvent,
    NoteDetail,
    Outcome,
    ProbeResult,
    StateChange,
    StateKind,
)
from netsleuth.report.json_out import to_json
from netsleuth.store import ProbeColumns, Series

S = 1_000_000_000
MS = 1_000_000
WALL = 1_700_000_000 * S  # wall and monotonic clocks differ, as they do
MONO = 5_000 * S
NS = "netns:c0"
CLIENT = "10.0.0.10"
SERVER = "10.1.0.2"
PROBE = f"dns:{SERVER}/www.example.test/A"
STEP = 50 * MS
BRIDGE = "br0"
PORTS = {("host", BRIDGE): BRIDGE, ("host", "vc0"): BRIDGE, ("host", "vc1"): BRIDGE}
FLAPPING = BridgeState(BRIDGE, "02:00:00:00:00:01", 1, False, 0, ("vc0",), mac_changes=6)
STILL = replace(FLAPPING, mac_changes=0)


def at(t: float) -> tuple[int, int]:
    return WALL + int(t * S), MONO + int(t * S)


def note(t: float = 0.0, text: str = "drops via bpftrace on skb:kfree_skb") -> NetEvent:
    return NetEvent(*at(t), "host", EventKind.NOTE, "", "drops", NoteDetail(text))


def drop(
    t: float,
    reason: str,
    location: str = "nft_do_chain",
    *,
    netns: str = "host",
    device: str = BRIDGE,
    port: int = 0,
    answer: bool = False,
    count: int = 1,
    daddr: str = SERVER,
) -> NetEvent:
    """A drop at ``t`` s; with ``port``, of the query sent from CLIENT:port
    (``answer``: of its answer), else an aggregate without headers."""
    if port:
        src, dst = (daddr, CLIENT) if answer else (CLIENT, daddr)
        sport, dport = (53, port) if answer else (port, 53)
        detail = DropDetail(reason, location, 7, device, "udp", src, dst, sport, dport, count)
    else:
        detail = DropDetail(reason, location, 7, device, count=count)
    return NetEvent(*at(t), netns, EventKind.DROP, device, reason, detail)


def redo(e: NetEvent, **changes: object) -> NetEvent:
    """``e`` with its drop detail changed."""
    assert isinstance(e.detail, DropDetail)
    return replace(e, detail=replace(e.detail, **changes))  # type: ignore[arg-type]


def failed_probe(t: float, port: int, target: str = NS) -> ProbeResult:
    return ProbeResult(
        *at(t), target, PROBE, SERVER, Outcome.TIMEOUT, None, f"from {CLIENT}:{port}"
    )


def outage(start_s: float, n: int, target: str = NS) -> Episode:
    start = WALL + int(start_s * S)
    end = start + (n - 1) * STEP
    return Episode(target, start, end, n, n, end + STEP)


def burst(
    starts: Sequence[float],
    reason: str,
    *,
    n: int = 10,
    target: str = NS,
    linked: bool = True,
    answer: bool = False,
    **where: Any,
) -> tuple[list[Episode], list[NetEvent], list[ProbeResult]]:
    """Outages of ``n`` failed probes at ``starts``, each probe's query (or
    answer) dropped 2 ms after it was sent with ``reason`` (``linked``
    False: as aggregates without headers)."""
    episodes, probes, events = [], [], []
    port = 40_000 + int(starts[0] * 10) if starts else 40_000
    for s in starts:
        episodes.append(outage(s, n, target))
        for i in range(n):
            t = s + i * STEP / S
            port += 1
            probes.append(failed_probe(t, port, target))
            events.append(
                drop(t + 0.002, reason, port=port if linked else 0, answer=answer, **where)
            )
    return episodes, events, probes


def evidence(
    episodes: Sequence[Episode],
    events: Sequence[NetEvent],
    probes: Sequence[ProbeResult] = (),
    *,
    span_s: float = 30.0,
    bridges: tuple[BridgeState, ...] = (),
    intervals: Sequence[StateInterval] = (),
    targets: Sequence[str] = (NS,),
    control: str | None = "host",
    localisation: str = "namespaces",
    recorded: bool = True,
    series: Sequence[SeriesStats] = (),
    resolvers: dict[str, tuple[str, ...]] | None = None,
) -> Evidence:
    span = int(span_s * S)
    eps = sorted(episodes, key=lambda e: e.start_ns)
    evs = sorted([*([note()] if recorded else []), *events], key=lambda e: e.wall_ns)
    states = (
        align(
            FAMILIES,
            list(intervals),
            eps,
            probe_interval_ns=STEP,
            records={t: (WALL, WALL + span) for t in {*targets, control or "x"}},
        )
        if intervals
        else {}
    )
    stats = tuple(TargetStats(t, 100, 10, 0.1, 0.05, 0.2, 1, 0.5) for t in targets)
    return Evidence(
        episodes=tuple(EpisodeDetail(e, (), None) for e in eps),
        correlations=(),
        states=states,
        bridges=bridges,
        targets=stats,
        localisation=localisation,
        control=control,
        dns_only=True,
        span_ns=span,
        series=tuple(series),
        resolvers=dict(resolvers or {}),
        drops=drop_record(evs, eps, span, failed=probes, ports=PORTS),
    )


def score(cause: str, ev: Evidence):  # type: ignore[no-untyped-def]
    return SCORERS[cause](ev)


# -- the record ---------------------------------------------------------------------------


def test_drops_are_counted_by_place_with_those_in_outages_and_the_probes_they_were() -> None:
    eps, events, probes = burst([5, 12, 19], "NETFILTER_DROP")
    # five more of the same reason between the outages, of other packets
    events += [drop(25 + i * 0.5, "NETFILTER_DROP", port=60_000 + i) for i in range(5)]
    ev = evidence(eps, events, probes)
    rec = ev.drops
    assert (rec.mechanism, rec.linkable, rec.linked) == ("bpftrace", 30, 30)
    de = rec.reasons["NETFILTER_DROP"]
    assert (de.total, de.in_outages, de.linked, de.linkable, de.linked_outages) == (
        35,
        30,
        30,
        30,
        3,
    )
    (place,) = de.places
    assert (place.location, place.netns, place.device, place.bridge) == (
        "nft_do_chain",
        "host",
        BRIDGE,
        BRIDGE,
    )
    assert (place.drops, place.in_outages, place.linked, place.to) == (35, 30, 30, f"{SERVER}:53")
    assert (de.counter.outages, de.counter.met) == (3, 3)
    assert de.back.stretches == 4 and de.back.met == 3  # the stretch after the outages met none
    assert to_json_keys(de.to_json()) >= {"reason", "drops", "linked", "p_value", "places"}


def to_json_keys(d: dict[str, object]) -> set[str]:
    return set(d)


def test_probes_sent_before_the_drop_source_started_are_not_counted_as_linkable() -> None:
    eps, events, probes = burst([5, 12, 19], "NETFILTER_DROP")
    late = [e for e in events if e.wall_ns >= WALL + 8 * S]
    span = 30 * S
    rec = drop_record([note(8.0), *late], eps, span, failed=probes)
    assert (rec.linkable, rec.linked) == (20, 20)
    # no "drops via" note: nothing was recorded, nothing is linkable
    off = drop_record([note(0.0, "kernel drop reasons unavailable: no permission")], eps, span)
    assert (off.mechanism, off.linkable, bool(off)) == (None, 0, False)


def test_the_drop_of_a_probes_answer_is_linked_by_the_reversed_tuple() -> None:
    _, events, probes = burst([5], "IP_RPFILTER", answer=True, device="uplink1")
    links = link_drops(probes, events)
    assert all(len(lk.drops) == 1 for lk in links) and len(links) == 10
    # a drop of another flow's answer (another port) is not
    other = [drop(5.002, "IP_RPFILTER", port=1234, answer=True)]
    assert not any(lk.drops for lk in link_drops(probes, other))


def test_drops_only_during_outages_of_a_long_record_are_unlikely_by_chance() -> None:
    starts = [30.0 * k + 10 for k in range(12)]  # 12 outages in 6 minutes
    eps, events, probes = burst(starts, "SOCKET_RCVBUFF", linked=False, count=40)
    ev = evidence(eps, events, probes, span_s=370)
    de = ev.drops.reasons["SOCKET_RCVBUFF"]
    assert de.linked == 0 and de.counter.met == 12
    assert de.p_value is not None and de.p_value < 1e-6
    assert drop_strength(de) == (True, "high")
    # the same drops at random times: no better than chance
    rng = random.Random(3)
    scattered = [replace(e, wall_ns=WALL + int(rng.uniform(0, 370) * S)) for e in events]
    de2 = evidence(eps, scattered, probes, span_s=370).drops.reasons["SOCKET_RCVBUFF"]
    assert de2.p_value is None or de2.p_value > 0.01
    assert not drop_strength(de2)[0]


def test_a_storm_of_aggregates_is_weighed_in_linear_time_and_every_count_kept() -> None:
    rng = np.random.default_rng(5)
    times = np.sort(rng.uniform(0, 3600, 40_000))
    events = [drop(float(t), "NO_SOCKET", "__udp4_lib_rcv", count=25) for t in times]
    eps = [outage(36.0 * k + 3, 20) for k in range(100)]
    began = time.perf_counter()
    rec = drop_record([note(), *events], eps, 3600 * S)
    took = time.perf_counter() - began
    de = rec.reasons["NO_SOCKET"]
    assert de.total == 25 * 40_000
    # in an outage: the drop's second meets [start - tol, recovery + tol]
    lo = np.asarray([e.start_ns - WALL for e in eps]) / S - 0.25
    hi = np.asarray([e.recovered_ns - WALL for e in eps if e.recovered_ns]) / S + 1.25
    inside = ((times[:, None] >= lo) & (times[:, None] <= hi)).any(axis=1)
    assert de.in_outages == 25 * int(inside.sum())
    assert took < 3.0, took  # a second or so for 40,000 aggregates on a loaded machine


def test_ftrace_drops_without_namespace_device_or_headers_still_count() -> None:
    eps, events, probes = burst([5, 12, 19], "NETFILTER_DROP", linked=False)
    unknown = [replace(e, netns="unknown", ifname="") for e in events]
    unknown = [redo(e, device="", netns_inode=0) for e in unknown]
    evs = [note(text="drops via ftrace instance (no bpftrace)"), *unknown]
    rec = drop_record(evs, eps, 30 * S, failed=probes)
    assert rec.mechanism == "ftrace" and rec.linked == 0
    (place,) = rec.reasons["NETFILTER_DROP"].places
    assert (place.netns, place.device, place.in_outages) == ("unknown", "", 30)


# -- the causes ---------------------------------------------------------------------------


def test_netfilter_drops_of_the_failed_queries_name_forward_blocked_without_a_state() -> None:
    ev = evidence(*burst([5, 12, 19], "NETFILTER_DROP"))
    s = score("forward-blocked", ev)
    assert (s.named, s.confidence) == (True, "high")
    assert s.evidence_for[0].startswith(
        "30 of 30 failed queries were dropped as NETFILTER_DROP by nft_do_chain on br0 "
        "(host namespace); in 3 independent outages"
    )
    assert "the subnet of br0" in s.title and "br0" in s.fix
    assert score_all(ev)[0].cause == "forward-blocked"
    # two outages: medium; one: not named, but said
    two = score("forward-blocked", evidence(*burst([5, 12], "NETFILTER_DROP")))
    assert (two.named, two.confidence) == (True, "medium")
    one = score("forward-blocked", evidence(*burst([5], "NETFILTER_DROP")))
    assert not one.named and any("NETFILTER_DROP" in x for x in one.evidence_for)


def test_netfilter_drops_in_the_targets_own_namespace_are_not_a_blocked_forward() -> None:
    ev = evidence(*burst([5, 12, 19], "NETFILTER_DROP", netns=NS, device="eth0"))
    s = score("forward-blocked", ev)
    assert not s.named and not any("NETFILTER_DROP" in x for x in s.evidence_for)


def test_netfilter_drops_of_other_packets_between_outages_name_nothing() -> None:
    eps, _, probes = burst([5, 12, 19], "NETFILTER_DROP")
    others = [drop(2 + i, "NETFILTER_DROP", port=50_000 + i) for i in (0, 6, 13, 20, 25)]
    s = score("forward-blocked", evidence(eps, others, probes))
    assert not s.named


def test_a_forward_state_named_cause_gets_the_drops_and_a_contrary_reason_goes_against() -> None:
    eps, events, probes = burst([5, 12, 19], "NETFILTER_DROP")
    blocked = [
        StateInterval(
            NS,
            StateKind.FORWARD_BLOCKED,
            e.start_ns - 10 * MS,
            e.end_ns + 20 * MS,
            StateChange(StateKind.FORWARD_BLOCKED, bridge=BRIDGE, subnet="10.0.0.0/24"),
        )
        for e in eps
    ]
    s = score("forward-blocked", evidence(eps, events, probes, intervals=blocked))
    assert s.named and s.confidence == "high"
    assert any("began and ended" in x for x in s.evidence_for)
    assert any(x.startswith("30 of 30 failed queries were dropped") for x in s.evidence_for)
    # the same state, but the queries died as OTHERHOST: against it
    _, bridged, _ = burst([5, 12, 19], "OTHERHOST", location="ip_rcv_core")
    s2 = score("forward-blocked", evidence(eps, bridged, probes, intervals=blocked))
    assert s2.named  # the state still names it
    assert any("for another reason (most as OTHERHOST" in x for x in s2.evidence_against)
    assert any("none as NETFILTER_DROP" in x for x in s2.evidence_against)


def test_rp_filter_drops_of_the_answers_name_rp_filter_without_its_counter() -> None:
    eps, events, probes = burst(
        [5, 12, 19], "IP_RPFILTER", location="ip_rcv_finish_core", device="uplink1", answer=True
    )
    s = score("rp-filter", evidence(eps, events, probes))
    assert (s.named, s.confidence) == (True, "high")
    assert "IP_RPFILTER by ip_rcv_finish_core on uplink1" in s.evidence_for[0]
    # IP_RPFILTER drops of other flows at other times: nothing
    stray = [drop(t, "IP_RPFILTER", port=30_000 + int(t), answer=True) for t in (1, 9, 16, 24)]
    assert not score("rp-filter", evidence(eps, stray, probes)).named


def test_rcvbuf_drops_during_the_outages_name_resolver_overload_without_its_counter() -> None:
    starts = [30.0 * k + 10 for k in range(12)]
    eps, events, probes = burst(
        starts, "SOCKET_RCVBUFF", location="udp_queue_rcv_one_skb", linked=False, count=40
    )
    s = score("resolver-overload", evidence(eps, events, probes, span_s=370))
    assert s.named and s.p_value is not None and s.p_value < 0.01
    assert any("SOCKET_RCVBUFF by udp_queue_rcv_one_skb" in x for x in s.evidence_for)
    # an overflowing socket elsewhere, at random times: not this cause
    rng = random.Random(11)
    scattered = [replace(e, wall_ns=WALL + int(rng.uniform(0, 370) * S)) for e in events]
    assert not score("resolver-overload", evidence(eps, scattered, probes, span_s=370)).named


def test_neighbour_creation_failures_name_a_full_table_and_a_failed_resolution_does_not() -> None:
    full = evidence(*burst([5, 12, 19], "NEIGH_CREATEFAIL", location="__neigh_create"))
    s = score("neighbour-table-full", full)
    assert s.named and any("NEIGH_CREATEFAIL" in x for x in s.evidence_for)
    failed = evidence(*burst([5, 12, 19], "NEIGH_FAILED", location="neigh_invalidate"))
    s2 = score("neighbour-table-full", failed)
    assert not s2.named
    assert any("for another reason (most as NEIGH_FAILED" in x for x in s2.evidence_against)


def test_stale_gateway_drops_on_a_flapping_bridge_name_the_flap_and_never_a_still_one() -> None:
    eps, events, probes = burst(
        [5, 12, 19], "NO_TX_TARGET", location="br_handle_frame_finish", device="vc0"
    )
    s = score("bridge-mac-flap", evidence(eps, events, probes, bridges=(FLAPPING,)))
    assert (s.named, s.bridge, s.confidence) == (True, BRIDGE, "high")
    assert any("NO_TX_TARGET by br_handle_frame_finish on vc0" in x for x in s.evidence_for)
    assert any("its MAC changed 6 times" in x for x in s.evidence_for)
    # the same drops, but the bridge's MAC never changed: the rule stands
    still = score("bridge-mac-flap", evidence(eps, events, probes, bridges=(STILL,)))
    assert not still.named
    assert still.evidence_against[0] == f"the MAC of bridge {BRIDGE} never changed in the record"
    # OTHERHOST on a port's peer in the bridge's namespace counts for that bridge
    _, peer, _ = burst([5, 12, 19], "OTHERHOST", location="ip_rcv_core", device="vch3p")
    s3 = score("bridge-mac-flap", evidence(eps, [*peer, events[0]], probes, bridges=(FLAPPING,)))
    assert s3.named and s3.bridge == BRIDGE


def test_no_drop_of_the_failed_queries_is_for_nat_missing_and_drops_here_against_it() -> None:
    eps, _, probes = burst([5, 12, 19], "NETFILTER_DROP")
    missing = [
        StateInterval(
            NS,
            StateKind.NAT_MISSING,
            e.start_ns - 10 * MS,
            e.end_ns + 20 * MS,
            StateChange(StateKind.NAT_MISSING, bridge=BRIDGE, subnet="10.0.0.0/24"),
        )
        for e in eps
    ]
    s = score("nat-missing", evidence(eps, [], probes, intervals=missing))
    assert s.named
    assert any(
        "none of the 30 failed queries" in x and "left this host" in x for x in s.evidence_for
    )
    # without drops recorded, nothing is said either way
    quiet = score("nat-missing", evidence(eps, [], probes, intervals=missing, recorded=False))
    assert not any("left this host" in x for x in quiet.evidence_for)
    # the queries were dropped here, by the firewall: against it
    _, dropped, _ = burst([5, 12, 19], "NETFILTER_DROP")
    s2 = score("nat-missing", evidence(eps, dropped, probes, intervals=missing))
    assert any("did not leave it" in x for x in s2.evidence_against)


def test_upstream_is_not_named_when_the_failed_queries_died_on_this_host() -> None:
    eps, events, probes = burst([3, 9, 15, 21, 27], "NETFILTER_DROP", target="host")
    ev = evidence(eps, events, probes, targets=("host",), localisation="everywhere")
    s = score("upstream-dns", ev)
    assert not s.named and "did not leave it" in s.evidence_against[0]
    # the same outages with nothing dropped here: upstream
    ev2 = evidence(eps, [], probes, targets=("host",), localisation="everywhere")
    assert score("upstream-dns", ev2).named


def test_no_socket_drops_to_a_loopback_stub_support_resolver_unreachable() -> None:
    stub = "127.0.0.53"
    series = (
        SeriesStats(NS, f"dns:{stub}/www.example.test/A", stub, 50, 50, {"refused": 50}),
        SeriesStats("host", PROBE, SERVER, 50, 0, {}),
    )
    eps = [outage(1, 50)]
    events = [
        drop(1 + i * 0.05, "NO_SOCKET", "__udp4_lib_rcv", netns=NS, device="lo", port=0)
        for i in range(50)
    ]
    events = [redo(e, daddr=stub, dport=53, proto="udp") for e in events]
    kw = {"series": series, "resolvers": {NS: (stub,)}}
    s = score("resolver-unreachable", evidence(eps, events, **kw))  # type: ignore[arg-type]
    assert s.named
    assert any("50 packets to 127.0.0.53:53 as NO_SOCKET" in x for x in s.evidence_for)
    # NO_SOCKET drops to another address say nothing about this one
    other = [redo(e, daddr="10.9.9.9") for e in events]
    s2 = score("resolver-unreachable", evidence(eps, other, **kw))  # type: ignore[arg-type]
    assert not any("NO_SOCKET" in x for x in s2.evidence_for)


def test_without_drops_the_scorers_say_nothing_of_them() -> None:
    eps, _, probes = burst([5, 12, 19], "NETFILTER_DROP")
    ev = evidence(eps, [], probes, recorded=False)
    assert ev.drops == DropRecord()
    for s in score_all(ev):
        assert not any("dropped" in x and "kernel" in x for x in s.evidence_for), s


# -- through the engine -------------------------------------------------------------------


def test_analyze_data_links_the_sourced_failures_and_reports_the_drops() -> None:
    series = {1: Series(1, NS, PROBE, SERVER), 2: Series(2, "host", PROBE, SERVER)}
    _, events, probes = burst([5, 12, 19], "NETFILTER_DROP")
    failed = {p.wall_ns for p in probes}
    rows = []
    for k in range(600):  # 30 s of 50 ms probes from both
        wall, mono = at(k * STEP / S)
        for sid in (1, 2):
            bad = sid == 1 and wall in failed
            rows.append((1, sid, wall, mono, int(Outcome.TIMEOUT if bad else Outcome.OK), -1))
    data = np.asarray(rows, dtype=np.int64)
    cols = ProbeColumns(
        data[:, 0], data[:, 1], data[:, 2], data[:, 3], data[:, 4].astype(np.int8), data[:, 5]
    )
    analysis = analyze_data(cols, series, [note(), *events], sourced=probes)
    assert analysis.verdict.cause == "forward-blocked"
    assert any("30 of 30 failed queries were dropped" in x for x in analysis.verdict.evidence)
    out = to_json(analysis)
    (reason,) = out["drops"]
    assert (reason["reason"], reason["drops"], reason["linked"], reason["linked_outages"]) == (
        "NETFILTER_DROP",
        30,
        30,
        3,
    )
    # without the sourced failures the drops still count, but link nothing
    plain = analyze_data(cols, series, [note(), *events])
    assert plain.drops[0].linked == 0 and plain.drops[0].total == 30


def test_too_big_drops_of_the_large_answers_show_the_host_saw_the_narrow_hop() -> None:
    big = f"dns:{SERVER}/big.example.test/TXT/edns=4096"
    series = (
        SeriesStats(NS, big, SERVER, 60, 60, {"timeout": 60}),
        SeriesStats(NS, PROBE, SERVER, 60, 0, {}),
    )
    eps, events, probes = burst(
        [5, 12, 19], "PKT_TOO_BIG", location="ip_forward", device="uplink0", answer=True
    )
    probes = [replace(p, probe=big) for p in probes]
    s = score("mtu-blackhole", evidence(eps, events, probes, series=series))
    assert s.named and s.confidence == "high"  # not capped: the host saw the narrow hop
    line = next(x for x in s.evidence_for if "PKT_TOO_BIG" in x)
    assert line.startswith("30 of 30 failed queries were dropped as PKT_TOO_BIG by ip_forward")
    (place,) = evidence(eps, events, probes).drops.reasons["PKT_TOO_BIG"].places
    assert place.to == CLIENT  # answers to the client's random ports: the address alone
    # the same split without the drops (nor any other sign of the hop): at most medium
    s2 = score("mtu-blackhole", evidence(eps, [], probes, series=series))
    assert s2.named and s2.confidence == "medium"
