"""WatchMetrics: what each feeding call does to the exported samples."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netsleuth import __version__
from netsleuth.metrics import WatchMetrics
from netsleuth.model import (
    EventKind,
    Finding,
    LinkDetail,
    MacChange,
    NetEvent,
    Outcome,
    ProbeResult,
    Severity,
    StateChange,
    StateKind,
)


def result(
    *,
    outcome: Outcome = Outcome.OK,
    latency_ns: int | None = 300_000,
    target: str = "c1",
    probe: str = "dns",
    server: str = "198.18.0.1",
    wall_ns: int = 1_700_000_000_000_000_000,
) -> ProbeResult:
    return ProbeResult(wall_ns, 0, target, probe, server, outcome, latency_ns)


def fresh() -> tuple[WatchMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return WatchMetrics(registry), registry


def attempts(reg: CollectorRegistry, outcome: str, target: str = "c1") -> float | None:
    return reg.get_sample_value(
        "netsleuth_probe_attempts_total",
        {"target": target, "probe": "dns", "server": "198.18.0.1", "outcome": outcome},
    )


def test_batch_counts_by_outcome_and_initialises_every_outcome() -> None:
    metrics, reg = fresh()
    metrics.observe_batch([result(), result(), result(outcome=Outcome.TIMEOUT, latency_ns=None)])
    metrics.observe_batch([result(outcome=Outcome.TIMEOUT, latency_ns=None)])
    assert attempts(reg, "ok") == 2
    assert attempts(reg, "timeout") == 2
    assert attempts(reg, "servfail") == 0  # present from the start, so rate() works
    assert attempts(reg, "target-gone") == 0


def test_latency_histogram_uses_le_buckets() -> None:
    metrics, reg = fresh()
    metrics.observe_batch(
        [
            result(latency_ns=500_000),  # exactly 0.0005 s: in the le="0.0005" bucket
            result(latency_ns=500_001),
            result(latency_ns=7_000_000_000),  # above every bound
            result(outcome=Outcome.TIMEOUT, latency_ns=None),  # not answered: not in the histogram
        ]
    )
    labels = {"target": "c1", "probe": "dns", "server": "198.18.0.1"}

    def bucket(le: str) -> float | None:
        return reg.get_sample_value("netsleuth_probe_latency_seconds_bucket", {**labels, "le": le})

    assert bucket("0.0005") == 1
    assert bucket("0.001") == 2
    assert bucket("5.0") == 2
    assert bucket("+Inf") == 3
    assert reg.get_sample_value("netsleuth_probe_latency_seconds_count", labels) == 3
    total = reg.get_sample_value("netsleuth_probe_latency_seconds_sum", labels)
    assert total is not None and abs(total - 7.001000001) < 1e-9


def test_series_cap_folds_new_combinations_into_other() -> None:
    registry = CollectorRegistry()
    metrics = WatchMetrics(registry, max_series=2)
    metrics.observe_batch([result(target=f"t{i}") for i in range(5)])
    assert attempts(registry, "ok", "t0") == 1
    assert attempts(registry, "ok", "t2") is None
    other = registry.get_sample_value(
        "netsleuth_probe_attempts_total",
        {"target": "other", "probe": "other", "server": "other", "outcome": "ok"},
    )
    assert other == 3


def test_last_attempt_timestamp_is_newest_wall_clock() -> None:
    metrics, reg = fresh()
    assert reg.get_sample_value("netsleuth_probe_last_attempt_timestamp_seconds") is None
    metrics.observe_batch([result(wall_ns=2_000_000_000), result(wall_ns=5_000_000_000)])
    metrics.observe_batch([result(wall_ns=3_000_000_000)])
    assert reg.get_sample_value("netsleuth_probe_last_attempt_timestamp_seconds") == 5.0


def test_events_bridge_churn_and_mac_changes() -> None:
    metrics, reg = fresh()
    metrics.set_bridge("br-lab", pinned=False, netns="lab-host")
    for i in range(3):
        metrics.observe_event(NetEvent(0, 0, "lab-host", EventKind.PORT_JOINED, f"c{i}", "br-lab"))
        metrics.observe_event(NetEvent(0, 0, "lab-host", EventKind.MAC_CHANGED, "br-lab"))
        metrics.observe_event(NetEvent(0, 0, "lab-host", EventKind.PORT_LEFT, f"c{i}", "br-lab"))
    # A MAC change of something that is not a bridge is an event, not a bridge MAC change.
    metrics.observe_event(NetEvent(0, 0, "lab-host", EventKind.MAC_CHANGED, "eth9"))
    key = {"netns": "lab-host", "bridge": "br-lab"}
    assert reg.get_sample_value("netsleuth_bridge_mac_pinned", key) == 0
    assert reg.get_sample_value("netsleuth_bridge_port_changes_total", key) == 6
    assert reg.get_sample_value("netsleuth_bridge_mac_changes_total", key) == 3
    assert (
        reg.get_sample_value(
            "netsleuth_events_total", {"kind": "port-left", "interface": "port:br-lab"}
        )
        == 3
    )
    assert (
        reg.get_sample_value("netsleuth_events_total", {"kind": "mac-changed", "interface": "eth9"})
        == 1
    )
    metrics.set_bridge("br-lab", pinned=True, netns="lab-host")
    assert reg.get_sample_value("netsleuth_bridge_mac_pinned", key) == 1
    metrics.forget_bridge("br-lab", netns="lab-host")
    assert reg.get_sample_value("netsleuth_bridge_mac_pinned", key) is None


def test_bridge_mac_change_event_tells_whether_it_is_pinned() -> None:
    metrics, reg = fresh()
    metrics.observe_event(
        NetEvent(
            0,
            0,
            "host",
            EventKind.MAC_CHANGED,
            "br9",
            "",
            MacChange("02:00:00:00:00:02", "02:00:00:00:00:01", "bridge", 1),
        )
    )
    key = {"netns": "host", "bridge": "br9"}
    assert reg.get_sample_value("netsleuth_bridge_mac_pinned", key) == 0
    assert reg.get_sample_value("netsleuth_bridge_mac_changes_total", key) == 1
    metrics.observe_event(
        NetEvent(0, 0, "host", EventKind.MAC_CHANGED, "br9", "", MacChange(addr_assign_type=3))
    )
    assert reg.get_sample_value("netsleuth_bridge_mac_pinned", key) == 1
    assert reg.get_sample_value("netsleuth_bridge_mac_changes_total", key) == 2


def test_invariant_gauge_and_episode_counter() -> None:
    metrics, reg = fresh()
    metrics.set_invariant("c1", True)
    metrics.set_invariant("c1", True)  # still the same episode
    assert reg.get_sample_value("netsleuth_gateway_stale", {"target": "c1"}) == 1
    metrics.observe_event(NetEvent(0, 0, "c1", EventKind.INVARIANT_RECOVERED, "eth0", "198.18.0.1"))
    assert reg.get_sample_value("netsleuth_gateway_stale", {"target": "c1"}) == 0
    metrics.observe_event(NetEvent(0, 0, "c1", EventKind.INVARIANT_VIOLATED, "eth0", "198.18.0.1"))
    assert reg.get_sample_value("netsleuth_gateway_stale", {"target": "c1"}) == 1
    assert reg.get_sample_value("netsleuth_gateway_stale_episodes_total", {"target": "c1"}) == 2


def test_path_states_are_gauges_and_at_risk_shows_before_a_failure() -> None:
    metrics, reg = fresh()
    risk = StateChange(StateKind.GATEWAY_AT_RISK, "br0", port="vjob1")
    metrics.observe_event(
        NetEvent(0, 0, "c1", EventKind.STATE_ENTERED, "br0", "gateway-at-risk", risk)
    )
    labels = {"target": "c1", "state": "gateway-at-risk"}
    assert reg.get_sample_value("netsleuth_target_state", labels) == 1
    metrics.observe_event(
        NetEvent(0, 0, "c1", EventKind.STATE_LEFT, "br0", "gateway-at-risk", risk)
    )
    assert reg.get_sample_value("netsleuth_target_state", labels) == 0
    gone = {"target": "c1", "state": "gateway-mac-gone"}
    assert reg.get_sample_value("netsleuth_target_state", gone) is None  # never entered


def test_findings_are_replaced_and_resolved_ones_drop_to_zero() -> None:
    clock = iter([100.0, 160.0])
    registry = CollectorRegistry()
    metrics = WatchMetrics(registry, clock=lambda: next(clock))

    def finding(rule: str, severity: Severity) -> Finding:
        return Finding(rule, severity, "br0", "t", {}, "why", "fix")

    metrics.set_findings(
        [
            finding("bridge-mac-unpinned", Severity.CRITICAL),
            finding("bridge-mac-unpinned", Severity.CRITICAL),
            finding("arp-notify-off", Severity.INFO),
        ]
    )
    crit = {"rule": "bridge-mac-unpinned", "severity": "critical"}
    assert registry.get_sample_value("netsleuth_doctor_findings", crit) == 2
    assert registry.get_sample_value("netsleuth_doctor_last_run_timestamp_seconds") == 100.0
    metrics.set_findings([finding("arp-notify-off", Severity.INFO)])
    assert registry.get_sample_value("netsleuth_doctor_findings", crit) == 0
    assert registry.get_sample_value("netsleuth_doctor_last_run_timestamp_seconds") == 160.0


def test_build_info_and_exposition_parses() -> None:
    metrics, reg = fresh()
    metrics.observe_batch([result()])
    text = generate_latest(reg).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    info = families["netsleuth_build_info"].samples[0]
    assert info.labels["version"] == __version__ and info.value == 1
    assert families["netsleuth_probe_attempts"].type == "counter"
    assert families["netsleuth_probe_latency_seconds"].type == "histogram"


def test_two_instances_do_not_clash() -> None:
    a, b = WatchMetrics(), WatchMetrics()
    a.observe_batch([result()])
    assert a.registry is not b.registry
    assert b.registry.get_sample_value("netsleuth_probe_attempts_total", {}) is None
    # A registry of its own carries the process metrics (CPU, memory) too.
    assert a.registry.get_sample_value("process_cpu_seconds_total") is not None


outcomes = st.sampled_from(list(Outcome))
results_strategy = st.lists(
    st.builds(
        result,
        outcome=outcomes,
        latency_ns=st.one_of(st.none(), st.integers(0, 10_000_000_000)),
        target=st.sampled_from(["c1", "c2", "host"]),
    ),
    max_size=60,
)


def exported(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(reg).decode()):
        if family.name.startswith("netsleuth_probe"):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@settings(max_examples=60, deadline=None)
@given(results=results_strategy, cuts=st.lists(st.integers(0, 60), max_size=5))
def test_batching_does_not_change_what_is_exported(
    results: Sequence[ProbeResult], cuts: list[int]
) -> None:
    one_by_one, reg1 = fresh()
    for r in results:
        one_by_one.observe_batch([r])
    batched, reg2 = fresh()
    bounds = sorted({0, len(results), *(c for c in cuts if c <= len(results))})
    for lo, hi in itertools.pairwise(bounds):
        batched.observe_batch(results[lo:hi])
    assert exported(reg1) == exported(reg2)
    total = sum(
        v for (name, _), v in exported(reg2).items() if name == "netsleuth_probe_attempts_total"
    )
    assert total == len(results)
    answered = sum(1 for r in results if r.latency_ns is not None)
    counts = sum(
        v
        for (name, _), v in exported(reg2).items()
        if name == "netsleuth_probe_latency_seconds_count"
    )
    assert counts == answered


def test_an_hour_of_churn_adds_no_series_after_the_first_minutes() -> None:
    """A new veth every 3 s (and its join, leave, MAC changes) must not grow the
    exposition: the number of samples settles."""
    metrics, reg = fresh()
    metrics.set_bridge("br-ci", pinned=False)

    def cycle(i: int) -> None:
        name = f"nsl-churn-{i}"
        metrics.observe_events(
            [
                NetEvent(0, 0, "host", EventKind.LINK_ADDED, name, "", LinkDetail("veth")),
                NetEvent(0, 0, "host", EventKind.PORT_JOINED, name, "br-ci"),
                NetEvent(
                    0, 0, "host", EventKind.MAC_CHANGED, "br-ci", "", MacChange(kind="bridge")
                ),
                NetEvent(0, 0, "host", EventKind.OPER_CHANGED, name),
                NetEvent(0, 0, "host", EventKind.PORT_LEFT, name, "br-ci"),
                NetEvent(0, 0, "host", EventKind.LINK_REMOVED, name, "", LinkDetail("veth")),
                NetEvent(0, 0, f"ns-{i}", EventKind.NEIGH_CHANGED, f"eth{i}", "198.18.0.1"),
            ]
        )
        metrics.set_bridge(f"br-{i}", pinned=True, netns=f"ns-{i}")

    def samples() -> int:
        return sum(1 for _ in generate_latest(reg).decode().splitlines())

    for i in range(100):
        cycle(i)
    after_5_min = samples()
    for i in range(100, 1200):
        cycle(i)
    assert samples() == after_5_min
