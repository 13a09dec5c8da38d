"""The cause scorers, the ranking and the control group on hand-built evidence.

Every scored cause has a positive case (its evidence names it) and a
look-alike of another cause that must not name it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netsleuth.analysis import (
    FAMILIES,
    SCORERS,
    BridgeState,
    Correlation,
    Episode,
    EpisodeDetail,
    Evidence,
    StateInterval,
    Verdict,
    align,
    score_all,
    verdict_of,
)
from netsleuth.causes import CAUSES
from netsleuth.model import StateChange, StateKind

S = 1_000_000_000
MS = 1_000_000
PROBE = 50 * MS  # 20 probes/s


def decide(
    correlations: list[Correlation],
    bridges: list[BridgeState],
    localisation: str,
    episodes: list[EpisodeDetail],
    *,
    dns_only: bool,
) -> Verdict:
    """The verdict from correlations alone (no state recorded)."""
    ev = Evidence(
        tuple(episodes), tuple(correlations), {}, tuple(bridges), (), localisation, None, dns_only
    )
    return verdict_of(score_all(ev), ev)


STRONG = Correlation(
    key="port-left:br0",
    label="port left bridge br0",
    kind="port-left",
    bridge="br0",
    events=30,
    window_s=0.1,
    windows_tried=6,
    onsets=30,
    onsets_after=29,
    exposed_share=0.03,
    relative_risk=500.0,
    p_value=1e-30,
    p_adjusted=1e-29,
    significant=True,
    median_delay_ms=20.0,
    max_delay_ms=49.0,
)
FLAPPING = BridgeState("br0", "02:00:00:00:00:01", 1, False, 0, ("v1",), mac_changes=60)


def eps(n: int, failed: int = 20) -> list[EpisodeDetail]:
    return [
        EpisodeDetail(Episode("netns:a", i * 10 * S, i * 10 * S + S, failed, failed), (), None)
        for i in range(n)
    ]


def test_strong_bridge_evidence_names_the_bridge() -> None:
    v = decide([STRONG], [FLAPPING], "namespaces", eps(30), dns_only=True)
    assert (v.cause, v.bridge, v.confidence, v.p_value) == ("bridge-mac-flap", "br0", "high", 1e-29)
    assert "netsleuth fix bridge br0" in v.fix
    assert any("29 of 30 outage onsets (97 %) came ≤ 100 ms after" in e for e in v.evidence)


def test_a_significant_port_join_next_to_the_cause_does_not_break_the_evidence() -> None:
    joined = replace(STRONG, kind="port-joined", key="port-joined:br0", p_adjusted=1e-5)
    v = decide([STRONG, joined], [FLAPPING], "namespaces", eps(30), dns_only=True)
    assert v.cause == "bridge-mac-flap"
    assert not any("joined" in e for e in v.evidence)


def test_a_bridge_is_never_blamed_without_both_correlation_and_mac_changes() -> None:
    pinned = replace(FLAPPING, pinned=True, addr_assign_type=3, mac_changes=0)
    cases = [
        ([STRONG], [pinned]),  # MAC never changed
        ([STRONG], []),  # no facts, no MAC change seen
        ([replace(STRONG, significant=False, p_adjusted=0.2)], [FLAPPING]),
        ([replace(STRONG, relative_risk=1.5)], [FLAPPING]),  # significant but weak
        ([replace(STRONG, exposed_share=0.7)], [FLAPPING]),  # window covers most of the time
        ([replace(STRONG, kind="port-joined", key="port-joined:br0")], [FLAPPING]),
    ]
    for correlations, bridges in cases:
        v = decide(correlations, bridges, "namespaces", eps(30), dns_only=True)
        assert v.cause != "bridge-mac-flap" and v.bridge is None, (correlations, bridges)


def test_fallbacks_without_a_named_correlation() -> None:
    assert decide([], [], "none", [], dns_only=True).cause == "no-failures"
    assert decide([], [], "everywhere", eps(10), dns_only=True).cause == "upstream-dns"
    assert decide([], [], "everywhere", eps(10), dns_only=False).cause == "upstream"
    race = decide([], [], "namespaces", eps(10, failed=1), dns_only=True)
    assert (race.cause, race.confidence) == ("conntrack-race", "low")
    assert decide([], [], "namespaces", eps(10), dns_only=True).cause == "unknown"


# -- state evidence ---------------------------------------------------------------------


def outage(target: str, start_s: float, seconds: float, recovered: bool = True) -> Episode:
    start = int(start_s * S)
    end = start + int(seconds * S)
    n = int(seconds * S // PROBE) + 1
    return Episode(target, start, end, n, n, end + PROBE if recovered else None)


def stretch(
    target: str, kind: StateKind, start_s: float, end_s: float | None, **change: str
) -> StateInterval:
    """A state interval that begins 10 ms before ``start_s``'s probe and ends
    20 ms after the outage's last lost probe (as watch records them)."""
    start = int(start_s * S) - 10 * MS
    end = None if end_s is None else int(end_s * S) + 20 * MS
    change.setdefault("bridge", "br0")
    return StateInterval(target, kind, start, end, StateChange(kind, **change))


def evidence(
    episodes: list[Episode],
    intervals: list[StateInterval],
    *,
    bridges: tuple[BridgeState, ...] = (),
    control: str | None = "host",
    localisation: str = "namespaces",
    record_s: float = 20.0,
) -> Evidence:
    targets = {e.target for e in episodes} | {i.target for i in intervals} | {control or "x"}
    states = align(
        FAMILIES,
        intervals,
        episodes,
        probe_interval_ns=PROBE,
        records={t: (0, int(record_s * S)) for t in targets},
    )
    details = tuple(EpisodeDetail(e, (), None) for e in episodes)
    return Evidence(details, (), states, bridges, (), localisation, control, True)


def named(ev: Evidence) -> dict[str, str]:
    return {s.cause: s.confidence for s in score_all(ev) if s.named}


GONE = StateKind.GATEWAY_MAC_GONE


def test_one_clean_aligned_outage_names_the_flap_with_at_least_medium_confidence() -> None:
    ev = evidence(
        [outage("netns:c1", 5.0, 6.3)], [stretch("netns:c1", GONE, 5.0, 11.3)], bridges=(FLAPPING,)
    )
    scores = score_all(ev)
    top = scores[0]
    assert (top.cause, top.named, top.bridge) == ("bridge-mac-flap", True, "br0")
    assert top.confidence in ("medium", "high")
    assert top.p_value is not None and top.p_value < 0.01
    assert any("1 of 1 independent outages began and ended" in e for e in top.evidence_for)
    v = verdict_of(scores, ev)
    assert v.cause == "bridge-mac-flap" and "netsleuth fix bridge br0" in v.fix


def test_three_aligned_outages_are_high_confidence() -> None:
    eps = [outage("netns:c1", t, 6.3) for t in (5.0, 20.0, 35.0)]
    ivs = [stretch("netns:c1", GONE, t, t + 6.3) for t in (5.0, 20.0, 35.0)]
    top = score_all(evidence(eps, ivs, bridges=(FLAPPING,), record_s=45))[0]
    assert (top.cause, top.confidence) == ("bridge-mac-flap", "high")


def test_a_state_that_does_not_line_up_names_nothing() -> None:
    # the state began 3 s before the outage and ended long after it
    ev = evidence(
        [outage("netns:c1", 8.0, 1.0)], [stretch("netns:c1", GONE, 5.0, 15.0)], bridges=(FLAPPING,)
    )
    assert "bridge-mac-flap" not in named(ev)
    flap = next(s for s in score_all(ev) if s.cause == "bridge-mac-flap")
    assert flap.evidence_against


def test_the_flap_is_never_named_for_a_bridge_whose_mac_never_changed() -> None:
    steady = replace(FLAPPING, mac_changes=0)
    ev = evidence(
        [outage("netns:c1", 5.0, 6.3)], [stretch("netns:c1", GONE, 5.0, 11.3)], bridges=(steady,)
    )
    assert "bridge-mac-flap" not in named(ev)


CASES = {
    "bridge-mac-flap": (GONE, {}),
    "gateway-arp-conflict": (StateKind.GATEWAY_MAC_FOREIGN, {"mac": "02:aa:00:00:00:01"}),
    "nat-missing": (StateKind.NAT_MISSING, {"subnet": "198.19.7.0/24"}),
    "forward-blocked": (StateKind.FORWARD_BLOCKED, {"subnet": "198.19.7.0/24"}),
    "path-link-down": (StateKind.PATH_LINK_DOWN, {"link": "veth7", "note": "peer down"}),
    "address-lost": (StateKind.ROUTE_MISSING, {"note": "no default route"}),
}
"""Cause -> the state its mechanism predicts (with what watch saw)."""

LOOK_ALIKE = {
    "bridge-mac-flap": "gateway-arp-conflict",  # the entry moved to a MAC someone else owns
    "gateway-arp-conflict": "bridge-mac-flap",
    "nat-missing": "forward-blocked",
    "forward-blocked": "nat-missing",
    "path-link-down": "address-lost",
    "address-lost": "path-link-down",
}


@pytest.mark.parametrize("cause", sorted(CASES))
def test_each_state_cause_is_named_from_its_own_state(cause: str) -> None:
    kind, change = CASES[cause]
    ev = evidence(
        [outage("netns:s1", 4.0, 2.0)],
        [stretch("netns:s1", kind, 4.0, 6.0, **change)],
        bridges=(FLAPPING,),
    )
    assert named(ev) == {cause: "medium"} or (
        cause in named(ev) and named(ev)[cause] in ("medium", "high")
    ), named(ev)
    assert score_all(ev)[0].cause == cause


@pytest.mark.parametrize("cause", sorted(LOOK_ALIKE))
def test_no_cause_is_named_from_a_look_alike_state(cause: str) -> None:
    kind, change = CASES[LOOK_ALIKE[cause]]
    ev = evidence(
        [outage("netns:s1", 4.0, 2.0)],
        [stretch("netns:s1", kind, 4.0, 6.0, **change)],
        bridges=(FLAPPING,),
    )
    assert cause not in named(ev)


def test_every_scored_cause_of_the_catalogue_has_a_scorer_and_a_test() -> None:
    scored = {c.id for c in CAUSES.values() if c.scored} - {"upstream"}
    assert scored == set(SCORERS)
    tested = set(CASES) | {"upstream-dns", "conntrack-race"}
    # the scorers of netsleuth.analysis.scorers have their own unit tests
    elsewhere = "\n".join(f.read_text() for f in Path(__file__).parent.glob("test_scorers_*.py"))
    tested |= {cause for cause in SCORERS if f'"{cause}"' in elsewhere}
    assert tested == set(SCORERS)


def test_a_deleted_bridge_is_named_as_what_it_is() -> None:
    iv = stretch(
        "netns:s1",
        StateKind.PATH_LINK_DOWN,
        7.0,
        None,
        bridge="svcbr2",
        link="svcbr2",
        note="deleted",
    )
    ev = evidence([outage("netns:s1", 7.0, 3.0, recovered=False)], [iv], record_s=10.05)
    v = verdict_of(score_all(ev), ev)
    assert v.cause == "path-link-down"
    assert v.title == "bridge svcbr2 was deleted: netns:s1 lost its gateway"


def host_outages(n: int) -> list[Episode]:
    return [outage("host", 30.0 + 3 * i, 0.1) for i in range(n)]


def test_a_flapping_bridge_and_upstream_loss_at_once_are_both_named() -> None:
    eps = [outage("netns:c1", 5.0, 6.3), *host_outages(5), outage("netns:c1", 31.1, 0.1)]
    ev = evidence(eps, [stretch("netns:c1", GONE, 5.0, 11.3)], bridges=(FLAPPING,), record_s=60)
    both = named(ev)
    assert "bridge-mac-flap" in both and "upstream-dns" in both, both
    assert score_all(ev)[0].cause == "bridge-mac-flap"  # the tested one ranks first


def test_upstream_is_not_named_when_the_host_control_never_failed() -> None:
    ev = evidence(
        [outage("netns:c1", 5.0, 6.3)], [stretch("netns:c1", GONE, 5.0, 11.3)], bridges=(FLAPPING,)
    )
    assert "upstream-dns" not in named(ev)
    assert "upstream-dns" not in named(
        evidence(host_outages(5), [], control=None, localisation="some-targets")
    )


def test_conntrack_race_is_not_named_when_the_host_control_fails_alike() -> None:
    singles = [
        EpisodeDetail(Episode("netns:a", i * 10 * S, i * 10 * S, 1, 1), (), None) for i in range(10)
    ]
    assert decide([], [], "everywhere", singles, dns_only=True).cause != "conntrack-race"
    upstream = decide([], [], "everywhere", singles, dns_only=True)
    assert upstream.cause == "upstream-dns"


def test_the_chance_of_an_alignment_shrinks_with_the_record() -> None:
    one = [outage("netns:c1", 5.0, 6.3)]
    iv = [stretch("netns:c1", GONE, 5.0, 11.3)]
    short = evidence(one, iv, record_s=15).states["bridge-mac-flap"]
    long = evidence(one, iv, record_s=600).states["bridge-mac-flap"]
    assert 0 < long.chance < short.chance < 0.01
    assert long.p_value < short.p_value
