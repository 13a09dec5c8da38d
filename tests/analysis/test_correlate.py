"""Correlation of onsets with event classes (pure logic, synthetic timelines)."""

from __future__ import annotations

import itertools
import random

import numpy as np

from netsleuth.analysis.correlate import (
    AtRisk,
    candidate_windows,
    classify,
    correlate,
    merge_simultaneous,
)
from netsleuth.model import (
    DockerDetail,
    EventDetail,
    EventKind,
    FirewallChange,
    InvariantDetail,
    MacChange,
    NetEvent,
)

S = 1_000_000_000
STEP = S // 20


def ev(
    t: int,
    ev_kind: EventKind,
    netns: str = "host",
    ifname: str = "",
    subject: str = "",
    *,
    detail: EventDetail | None = None,
) -> NetEvent:
    if detail is None:
        return NetEvent(t, t, netns, ev_kind, ifname, subject)
    return NetEvent(t, t, netns, ev_kind, ifname, subject, detail)


def at_risk(target: str, onsets: list[int], seconds: int) -> AtRisk:
    """Attempts every 50 ms; the first attempt at/after each onset time fails."""
    wall = np.arange(0, seconds * S, STEP, dtype=np.int64)
    onset = np.zeros(wall.size, dtype=bool)
    onset[np.searchsorted(wall, onsets)] = True
    return AtRisk(target, wall, onset)


def test_classify_names_bridges_and_ignores_recoveries() -> None:
    mac = classify(ev(0, EventKind.MAC_CHANGED, ifname="br0", detail=MacChange(kind="bridge")))
    assert mac is not None and (mac.key, mac.bridge) == ("mac-changed:br0", "br0")
    left = classify(ev(0, EventKind.PORT_LEFT, ifname="veth1", subject="br0"))
    assert left is not None and (left.key, left.bridge) == ("port-left:br0", "br0")
    inv = classify(
        ev(
            0,
            EventKind.INVARIANT_VIOLATED,
            "netns:a",
            subject="198.18.0.1",
            detail=InvariantDetail(bridge="br0"),
        )
    )
    assert inv is not None and inv.bridge == "br0"
    nat = classify(ev(0, EventKind.FIREWALL_CHANGED, detail=FirewallChange(nat=True)))
    assert nat is not None and nat.key == "firewall-changed:nat@host"
    dock = classify(ev(0, EventKind.DOCKER, subject="c1", detail=DockerDetail("die")))
    assert dock is not None and dock.key == "docker:die"
    other = classify(ev(0, EventKind.MAC_CHANGED, ifname="eth0"))
    assert other is not None and other.bridge is None
    assert classify(ev(0, EventKind.INVARIANT_RECOVERED, "netns:a")) is None


def test_candidate_windows_span_probe_interval_to_event_gap() -> None:
    events = [i * 3 * S for i in range(20)]
    ws = candidate_windows(STEP, events, 60 * S)
    assert ws[0] == STEP and ws[-1] <= 3 * S and len(ws) == 6
    assert all(b == 2 * a for a, b in itertools.pairwise(ws))
    assert candidate_windows(STEP, [0, STEP // 2], 60 * S) == [STEP]
    assert len(candidate_windows(1_000_000, [0, 10**6 * S], 10**6 * S)) == 10


def test_planted_cause_is_found_and_bystander_is_not() -> None:
    rnd = random.Random(7)
    cause = [int(rnd.uniform(1, 119) * S) for _ in range(25)]
    bystander = [int(rnd.uniform(1, 119) * S) for _ in range(25)]
    onsets = [t + rnd.randrange(0, 40_000_000) for t in cause]
    events = [ev(t, EventKind.PORT_LEFT, ifname="v", subject="br0") for t in cause]
    events += [
        ev(t, EventKind.DOCKER, subject="c", detail=DockerDetail("start")) for t in bystander
    ]
    result = correlate(
        [at_risk("netns:a", onsets, 120)], events, probe_interval_ns=STEP, span_ns=120 * S
    )
    by_key = {c.key: c for c in result}
    hit, miss = by_key["port-left:br0"], by_key["docker:start"]
    assert result[0] is hit and hit.significant and hit.p_adjusted < 1e-10
    assert hit.onsets_after == hit.onsets == 25 and hit.window_s <= 0.1
    assert hit.relative_risk > 50
    assert not miss.significant and miss.p_adjusted > 0.05


def test_random_events_are_not_significant_for_any_seed() -> None:
    for seed in range(20):
        rnd = random.Random(seed)
        onsets = sorted(int(rnd.uniform(0, 300) * S) for _ in range(40))
        events = [
            ev(
                int(rnd.uniform(0, 300) * S),
                EventKind.MAC_CHANGED,
                ifname="br0",
                detail=MacChange(kind="bridge"),
            )
            for _ in range(100)
        ]
        result = correlate(
            [at_risk("netns:a", onsets, 300)], events, probe_interval_ns=STEP, span_ns=300 * S
        )
        assert not any(c.significant for c in result), (seed, result)


def test_namespace_events_only_expose_their_own_target() -> None:
    onsets_a = [10 * S, 30 * S, 50 * S, 70 * S, 90 * S]
    events = [
        ev(
            t - 10_000_000,
            EventKind.INVARIANT_VIOLATED,
            "netns:a",
            subject="gw",
            detail=InvariantDetail(bridge="br0"),
        )
        for t in onsets_a
    ]
    result = correlate(
        [at_risk("netns:a", onsets_a, 100), at_risk("netns:b", [], 100)],
        events,
        probe_interval_ns=STEP,
        span_ns=100 * S,
    )
    (c,) = result
    assert c.significant and c.onsets == 5 and c.onsets_after == 5
    # only netns:a's attempts were at risk for this class: b did not dilute the exposure
    assert c.exposed_share < 0.01


def test_simultaneous_onsets_in_several_targets_count_once() -> None:
    a = at_risk("netns:a", [10 * S, 20 * S], 30)
    b = at_risk("netns:b", [10 * S + STEP // 2, 25 * S], 30)
    merged = merge_simultaneous([a, b], 2 * STEP)
    assert [int(r.onset.sum()) for r in merged] == [2, 1]
    assert merged[1].wall_ns.size == b.wall_ns.size - 1
    assert correlate([a, b], [], probe_interval_ns=STEP, span_ns=30 * S) == []
