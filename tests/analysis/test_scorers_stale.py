"""The stale-conntrack-nat scorer and the pieces of its signal (pure): short
losses inside the stretches in which un-NATed entries were present name it;
the same losses without such entries, or entries present all along, do not;
beside a named bridge flap the one that cost more outages leads."""

from __future__ import annotations

import dataclasses
import socket
import struct

from netsleuth.analysis.episodes import Episode
from netsleuth.analysis.evidence import CauseScore, Evidence
from netsleuth.analysis.result import BridgeState, EpisodeDetail
from netsleuth.analysis.scorers.stale import inside, leads_flap, score_stale_conntrack_nat
from netsleuth.analysis.scoring import SCORERS, score_all
from netsleuth.analysis.unnated import UNNATED, UnnatedStretch, unnated_stretches
from netsleuth.causes import CAUSES
from netsleuth.model import CounterSample, EventKind, NetEvent
from netsleuth.netns.unnated import (
    CT_NEW,
    IPS_SRC_NAT,
    bridge_networks,
    dump_request,
    parse_entry,
)
from netsleuth.watch.counters import with_level

S = 1_000_000_000
T0 = 1_700_000_000 * S
TARGET = "netns:c0"


def _ep(at_s: float, failed: int = 1, length_s: float = 0.0) -> EpisodeDetail:
    start = T0 + int(at_s * S)
    end = start + int(length_s * S)
    return EpisodeDetail(Episode(TARGET, start, end, failed, failed, end + S // 20), (), None)


def _evidence(
    episodes: list[EpisodeDetail], stretches: list[tuple[float, float]], span_s: float = 60.0
) -> Evidence:
    bridge = BridgeState("br0", "02:00:00:00:00:01", 1, False, 0, ("vp0",), 2)
    return Evidence(
        episodes=tuple(episodes),
        correlations=(),
        states={},
        bridges=(bridge,),
        targets=(),
        localisation="namespaces",
        control="host",
        dns_only=True,
        span_ns=int(span_s * S),
        unnated=tuple(
            UnnatedStretch("host", T0 + int(a * S), T0 + int(b * S), 120) for a, b in stretches
        ),
    )


# short losses every second from 20 s to 40 s, after a 6 s outage at 13 s
TAIL = [_ep(13, 120, 6.3), *(_ep(20 + i) for i in range(20))]


def test_short_losses_while_unnated_entries_were_present_name_it() -> None:
    score = score_stale_conntrack_nat(_evidence(TAIL, [(13, 45)]))
    assert score.named and score.confidence in ("medium", "high"), score
    assert score.p_value is not None and score.p_value < 0.01
    assert score.evidence_for[0].startswith("20 of 20 short losses")
    assert score.fields == {"bridge": "br0"}
    assert "netsleuth fix bridge br0" in score.fix


def test_the_same_losses_without_such_entries_do_not() -> None:
    none = score_stale_conntrack_nat(_evidence(TAIL, []))
    assert not none.named and none.evidence_against == (
        "no conntrack entry that escaped NAT was recorded",
    )
    elsewhere = score_stale_conntrack_nat(_evidence(TAIL, [(45, 58)]))  # after the losses
    assert not elsewhere.named


def test_entries_present_all_along_say_nothing() -> None:
    # a stretch over the whole record: every loss falls inside by necessity
    score = score_stale_conntrack_nat(_evidence(TAIL, [(0, 60)]))
    assert not score.named
    assert score.p_value is not None and score.p_value > 0.5


def test_the_longer_outages_are_left_out_of_the_share() -> None:
    losses = [e.episode for e in TAIL[1:]]
    stretch = [UnnatedStretch("host", T0 + 13 * S, T0 + 45 * S, 9)]
    _, bare, _ = inside(losses, stretch, 60 * S)
    _, cover, _ = inside(losses, stretch, 60 * S, busy=[TAIL[0].episode])
    assert cover < bare  # 6.3 s in which no short loss could begin left out of both


def test_beside_a_named_flap_the_one_with_more_outages_leads() -> None:
    ev = _evidence(TAIL, [(13, 45)])
    stale = score_stale_conntrack_nat(ev)
    flap = CauseScore("bridge-mac-flap", True, stale.confidence, 1e-3)
    assert leads_flap(stale, flap, 2, ev)
    assert not leads_flap(stale, flap, 25, ev)
    assert not leads_flap(CauseScore("stale-conntrack-nat", False, "none", None), flap, 0, ev)


def test_a_flap_more_certain_than_the_entries_stays_the_verdict() -> None:
    # a bridge seen flapping in many outages (high) beside a medium stale
    # score: more single losses than outages do not make the entries the cause
    ev = _evidence(TAIL, [(13, 45)])
    stale = score_stale_conntrack_nat(ev)
    medium = dataclasses.replace(stale, confidence="medium")
    assert leads_flap(medium, CauseScore("bridge-mac-flap", True, "medium", 1e-3), 2, ev)
    assert not leads_flap(medium, CauseScore("bridge-mac-flap", True, "high", 1e-9), 2, ev)


def test_it_is_scored_and_catalogued() -> None:
    assert "stale-conntrack-nat" in SCORERS
    assert CAUSES["stale-conntrack-nat"].scored
    ranked = score_all(_evidence(TAIL, [(13, 45)]))
    assert [s.cause for s in ranked if s.named][:1] == ["stale-conntrack-nat"]


def _level(at_s: float, value: int) -> NetEvent:
    sample = with_level(None, 1.0, UNNATED, value)
    return NetEvent(T0 + int(at_s * S), 0, "host", EventKind.COUNTERS, "", "", sample)


def test_levels_become_stretches_until_none_are_seen() -> None:
    rise = CounterSample(1.0, {"ct.insert_failed": 1}, {})
    other = NetEvent(T0 + 2 * S, 0, "host", EventKind.COUNTERS, "", "", rise)
    events = [_level(1, 5), other, _level(3, 9), _level(5, 0), _level(8, 2)]
    got = unnated_stretches(events, T0 + 10 * S)
    assert got == (
        UnnatedStretch("host", T0 + 1 * S, T0 + 5 * S, 9),
        UnnatedStretch("host", T0 + 8 * S, T0 + 10 * S, 2),  # still open at the end
    )
    merged = with_level(rise, 1.0, UNNATED, 3)
    assert merged.deltas == {"ct.insert_failed": 1} and merged.levels == {UNNATED: 3}


def _nla(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def _tuple(src: str, dst: str, sport: int, dport: int) -> bytes:
    ip = _nla(1, socket.inet_aton(src)) + _nla(2, socket.inet_aton(dst))
    proto = (
        _nla(1, bytes([17])) + _nla(2, struct.pack("!H", sport)) + _nla(3, struct.pack("!H", dport))
    )
    return _nla(1 | 0x8000, ip) + _nla(2 | 0x8000, proto)


def test_a_ctnetlink_entry_is_read_with_its_reply_address_and_status() -> None:
    body = struct.pack("=BBH", socket.AF_INET, 0, 0)
    body += _nla(1 | 0x8000, _tuple("10.9.0.7", "10.9.255.2", 40001, 53))
    body += _nla(2 | 0x8000, _tuple("10.9.255.2", "10.9.0.7", 53, 40001))
    body += _nla(3, struct.pack("!I", 0x188))
    msg = struct.pack("=LHHLL", 16 + len(body), CT_NEW, 0, 1, 0) + body
    parsed = parse_entry(msg, 16, len(msg))
    assert parsed is not None
    entry, status = parsed
    assert (entry.src, entry.dst, entry.sport, entry.dport) == ("10.9.0.7", "10.9.255.2", 40001, 53)
    assert entry.reply_dst == entry.src and not entry.replied and status == 0x188


def test_the_dump_asks_the_kernel_to_filter_by_status() -> None:
    plain = dump_request(0, 0x12)
    assert plain[:4] == struct.pack("=BBH", socket.AF_INET, 0, 0)
    assert _nla(3, struct.pack("!I", 0)) in plain and _nla(26, struct.pack("!I", 0x12)) in plain
    by_src = dump_request(IPS_SRC_NAT, IPS_SRC_NAT, "10.9.0.7")
    assert socket.inet_aton("10.9.0.7") in by_src and len(by_src) > len(plain)


def test_only_addresses_on_bridges_make_bridge_subnets() -> None:
    nets = bridge_networks(
        [(2, "bridge"), (3, "veth")], [(2, "10.9.0.1", 24), (3, "10.9.255.1", 30)]
    )
    assert [str(n) for n in nets] == ["10.9.0.0/24"]
