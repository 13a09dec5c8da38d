"""The knowledge base and the control group on hand-built evidence."""

from __future__ import annotations

from dataclasses import replace

from netsleuth.analysis import BridgeState, Correlation, Episode, EpisodeDetail, decide, localise
from netsleuth.analysis.control import target_stats

S = 1_000_000_000

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


def test_localisation_from_the_host_control() -> None:
    none = target_stats({"host": (1000, 0), "netns:a": (1000, 0)}, [])
    assert localise(none)[0] == "none"
    inside = target_stats({"host": (1000, 0), "netns:a": (1000, 40)}, [])
    where, text = localise(inside)
    assert where == "namespaces" and "host control did not fail" in text
    everywhere = target_stats({"host": (1000, 30), "netns:a": (1000, 35)}, [])
    assert localise(everywhere)[0] == "everywhere"
    few = target_stats({"host": (1000, 0), "netns:a": (1000, 1)}, [])
    assert localise(few)[0] == "some-targets"  # one failure proves nothing
    no_control = target_stats({"netns:a": (1000, 5), "netns:b": (1000, 4)}, [])
    where, text = localise(no_control)
    assert where == "all-targets" and "host as a control target" in text
