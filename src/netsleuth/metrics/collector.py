"""The metrics of a watch (or exporter) run, as one prometheus-client collector.

:class:`WatchMetrics` keeps plain counters under one lock and builds the
metric families only when Prometheus scrapes. ``observe_batch`` is on the hot
path (thousands of results every 100 ms): it counts the batch with
:class:`collections.Counter` first, then touches each series once.
"""

from __future__ import annotations

import platform
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from netsleuth import __version__
from netsleuth.metrics.labels import OTHER, BoundedValues, InterfaceLabels
from netsleuth.model import (
    ADDR_ASSIGN_SET,
    EventKind,
    Finding,
    MacChange,
    NetEvent,
    Outcome,
    ProbeResult,
)

__all__ = ["LATENCY_BUCKETS", "WatchMetrics", "new_registry"]

#: Upper bounds (seconds) of the latency histogram. A DNS answer across a
#: veth takes well under a millisecond; a resolver retry takes seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_BOUNDS_NS = [round(b * 1e9) for b in LATENCY_BUCKETS]
_BUCKET_NAMES = [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]
_OUTCOMES = list(Outcome)
_SERIES_KEY = attrgetter("target", "probe", "server", "outcome")

SeriesKey = tuple[str, str, str]

_MAX_BRIDGE_NAMES = 4096


def new_registry() -> CollectorRegistry:
    """A private registry with the process collector (CPU, memory, fds)."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@dataclass(slots=True)
class _Series:
    """Counts of one (target, probe, server)."""

    outcomes: list[int] = field(default_factory=lambda: [0] * len(_OUTCOMES))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS_NS) + 1))
    latency_sum_ns: int = 0


class WatchMetrics(Collector):
    """Everything a watch run exports to Prometheus.

    Feed it with :meth:`observe_batch` (probe results), :meth:`observe_event`
    (network events), :meth:`set_bridge`, :meth:`set_findings` and
    :meth:`set_invariant`; serve ``self.registry`` with
    :func:`netsleuth.metrics.serve`. Thread-safe.

    ``registry=None`` gives a fresh registry of its own (with process
    metrics), so several runs in one process never clash. ``max_series``
    bounds the (target, probe, server) combinations and the targets,
    ``max_interfaces`` the values of the ``interface``, ``bridge`` and
    ``netns`` labels; beyond them new values become ``other``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_series: int = 1000,
        max_interfaces: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else new_registry()
        self._clock = clock
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, _Series] = {}
        self._series_keys = BoundedValues(max_series)
        self._last_attempt: float | None = None
        self._interfaces = InterfaceLabels(limit=max_interfaces)
        self._events: Counter[tuple[str, str]] = Counter()
        self._stale: dict[str, bool] = {}
        self._states: dict[tuple[str, str], bool] = {}  # (target, state) -> in it now
        self._stale_total: Counter[str] = Counter()
        self._targets = BoundedValues(max_series)
        self._netns = BoundedValues(max_interfaces)
        self._pinned: dict[tuple[str, str], bool] = {}
        self._bridge_names: set[tuple[str, str]] = set()
        self._port_changes: Counter[tuple[str, str]] = Counter()
        self._mac_changes: Counter[tuple[str, str]] = Counter()
        self._findings: dict[tuple[str, str], int] = {}
        self._doctor_last_run: float | None = None
        self._doctor_runs: Counter[str] = Counter()
        self.registry.register(self)

    # -- feeding -----------------------------------------------------------

    def observe_batch(self, results: Sequence[ProbeResult]) -> None:
        """Count a batch of probe results (any size; cheap per result)."""
        if not results:
            return
        counts = Counter(map(_SERIES_KEY, results))
        latencies: dict[SeriesKey, list[int]] = {}
        for r in results:
            if r.latency_ns is not None:
                key = (r.target, r.probe, r.server)
                got = latencies.get(key)
                if got is None:
                    latencies[key] = [r.latency_ns]
                else:
                    got.append(r.latency_ns)
        newest = max(r.wall_ns for r in results) / 1e9
        with self._lock:
            for (target, probe, server, outcome), n in counts.items():
                self._get_series((target, probe, server)).outcomes[int(outcome)] += n
            for key, values in latencies.items():
                series = self._get_series(key)
                buckets = series.buckets
                for value in values:
                    buckets[bisect_left(_BOUNDS_NS, value)] += 1
                series.latency_sum_ns += sum(values)
            if self._last_attempt is None or newest > self._last_attempt:
                self._last_attempt = newest

    def _get_series(self, key: SeriesKey) -> _Series:
        series = self._series.get(key)
        if series is None:
            if self._series_keys.get("\0".join(key)) == OTHER:
                key = (OTHER, OTHER, OTHER)
            series = self._series.setdefault(key, _Series())
        return series

    def observe_event(self, event: NetEvent) -> None:
        """Count one network event and update the state it implies."""
        with self._lock:
            self._observe_event(event)

    def observe_events(self, events: Iterable[NetEvent]) -> None:
        with self._lock:
            for event in events:
                self._observe_event(event)

    def _observe_event(self, event: NetEvent) -> None:
        kind = event.kind
        self._events[(str(kind), self._interfaces.label(event))] += 1
        if kind in (EventKind.PORT_JOINED, EventKind.PORT_LEFT) and event.subject:
            self._remember_bridge(event.netns, event.subject)
            self._port_changes[self._bridge_key(event.netns, event.subject)] += 1
        elif kind is EventKind.MAC_CHANGED and event.ifname:
            change = event.detail if isinstance(event.detail, MacChange) else MacChange()
            if change.kind == "bridge" or (event.netns, event.ifname) in self._bridge_names:
                self._remember_bridge(event.netns, event.ifname)
                key = self._bridge_key(event.netns, event.ifname)
                self._mac_changes[key] += 1
                if change.addr_assign_type is not None:
                    self._pinned[key] = change.addr_assign_type == ADDR_ASSIGN_SET
        elif kind in (EventKind.STATE_ENTERED, EventKind.STATE_LEFT) and event.subject:
            target = self._targets.get(event.netns)
            self._states[(target, event.subject)] = kind is EventKind.STATE_ENTERED
        elif kind is EventKind.INVARIANT_VIOLATED:
            self._set_invariant(event.netns, True)
        elif kind is EventKind.INVARIANT_RECOVERED:
            self._set_invariant(event.netns, False)

    def set_invariant(self, target: str, violated: bool) -> None:
        """Whether ``target``'s gateway neighbour entry holds a MAC the bridge
        no longer answers to (the stale-gateway invariant)."""
        with self._lock:
            self._set_invariant(target, violated)

    def _set_invariant(self, target: str, violated: bool) -> None:
        target = self._targets.get(target)
        if violated and not self._stale.get(target, False):
            self._stale_total[target] += 1
        self._stale[target] = violated

    def set_bridge(self, bridge: str, pinned: bool, netns: str = "host") -> None:
        """Whether ``bridge`` (in ``netns``) has a MAC of its own
        (``addr_assign_type`` 3) or follows its ports."""
        with self._lock:
            self._remember_bridge(netns, bridge)
            self._pinned[self._bridge_key(netns, bridge)] = pinned

    def _bridge_key(self, netns: str, bridge: str) -> tuple[str, str]:
        return (self._netns.get(netns), self._interfaces.bridge_label(bridge))

    def _remember_bridge(self, netns: str, bridge: str) -> None:
        if len(self._bridge_names) < _MAX_BRIDGE_NAMES:
            self._bridge_names.add((netns, bridge))

    def forget_bridge(self, bridge: str, netns: str = "host") -> None:
        """Stop exporting a bridge that no longer exists."""
        with self._lock:
            key = self._bridge_key(netns, bridge)
            for table in (self._pinned, self._port_changes, self._mac_changes):
                table.pop(key, None)

    def set_findings(self, findings: Sequence[Finding]) -> None:
        """Replace the current doctor findings. A (rule, severity) seen before
        but absent now is exported as 0, so alerts resolve."""
        counts = Counter((f.rule, f.severity.label) for f in findings)
        with self._lock:
            for key in self._findings:
                self._findings[key] = 0
            self._findings.update(counts)
            self._doctor_last_run = self._clock()
            self._doctor_runs["ok"] += 1

    def doctor_failed(self) -> None:
        """Count a doctor run that could not read the host."""
        with self._lock:
            self._doctor_runs["error"] += 1

    # -- Collector ---------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return list(_families(_Snapshot()))

    def collect(self) -> Iterable[Metric]:
        # Copy under the lock (cheap), build the families outside it, so a
        # scrape never holds up observe_batch for long.
        with self._lock:
            snap = _Snapshot(
                series=[
                    (key, list(s.outcomes), list(s.buckets), s.latency_sum_ns)
                    for key, s in self._series.items()
                ],
                last_attempt=self._last_attempt,
                events=dict(self._events),
                stale=dict(self._stale),
                stale_total=dict(self._stale_total),
                states=dict(self._states),
                pinned=dict(self._pinned),
                port_changes=dict(self._port_changes),
                mac_changes=dict(self._mac_changes),
                findings=dict(self._findings),
                doctor_last_run=self._doctor_last_run,
                doctor_runs=dict(self._doctor_runs),
            )
        return list(_families(snap))


@dataclass(slots=True)
class _Snapshot:
    """A copy of the counters, taken under the lock at scrape time."""

    series: list[tuple[SeriesKey, list[int], list[int], int]] = field(default_factory=list)
    last_attempt: float | None = None
    events: dict[tuple[str, str], int] = field(default_factory=dict)
    stale: dict[str, bool] = field(default_factory=dict)
    stale_total: dict[str, int] = field(default_factory=dict)
    states: dict[tuple[str, str], bool] = field(default_factory=dict)
    pinned: dict[tuple[str, str], bool] = field(default_factory=dict)
    port_changes: dict[tuple[str, str], int] = field(default_factory=dict)
    mac_changes: dict[tuple[str, str], int] = field(default_factory=dict)
    findings: dict[tuple[str, str], int] = field(default_factory=dict)
    doctor_last_run: float | None = None
    doctor_runs: dict[str, int] = field(default_factory=dict)


def _families(snap: _Snapshot) -> Iterator[Metric]:
    attempts = CounterMetricFamily(
        "netsleuth_probe_attempts",
        "Probe attempts by outcome (ok and nxdomain are answers; the rest are failures).",
        labels=["target", "probe", "server", "outcome"],
    )
    latency = HistogramMetricFamily(
        "netsleuth_probe_latency_seconds",
        "Time from query to answer of answered probe attempts.",
        labels=["target", "probe", "server"],
    )
    for (target, probe, server), outcomes, counts, sum_ns in snap.series:
        for outcome, n in zip(_OUTCOMES, outcomes, strict=True):
            attempts.add_metric([target, probe, server, outcome.label], n)
        cumulative = 0
        buckets = []
        for name, n in zip(_BUCKET_NAMES, counts, strict=True):
            cumulative += n
            buckets.append((name, float(cumulative)))
        latency.add_metric([target, probe, server], buckets, sum_ns / 1e9)
    yield attempts
    yield latency

    last = GaugeMetricFamily(
        "netsleuth_probe_last_attempt_timestamp_seconds",
        "Wall-clock time of the newest probe attempt counted.",
    )
    if snap.last_attempt is not None:
        last.add_metric([], snap.last_attempt)
    yield last

    events = CounterMetricFamily(
        "netsleuth_events",
        "Network events by kind and interface (interface names of churning "
        "ports are collapsed to port:<bridge> or <prefix>*).",
        labels=["kind", "interface"],
    )
    stale = GaugeMetricFamily(
        "netsleuth_gateway_stale",
        "1 while the target's gateway neighbour entry holds a MAC the bridge no longer answers to.",
        labels=["target"],
    )
    stale_total = CounterMetricFamily(
        "netsleuth_gateway_stale_episodes",
        "Times the stale-gateway invariant became violated.",
        labels=["target"],
    )
    for (kind, interface), n in snap.events.items():
        events.add_metric([kind, interface], n)
    for target, violated in snap.stale.items():
        stale.add_metric([target], 1.0 if violated else 0.0)
        stale_total.add_metric([target], snap.stale_total.get(target, 0))
    yield events
    yield stale
    yield stale_total

    states = GaugeMetricFamily(
        "netsleuth_target_state",
        "1 while the target is in a state a cause predicts (gateway-mac-gone, nat-missing, "
        "path-link-down, ...; gateway-at-risk: its gateway MAC is borrowed from a port that "
        "may leave), 0 once it left it.",
        labels=["target", "state"],
    )
    for (target, state), on in sorted(snap.states.items()):
        states.add_metric([target, state], 1.0 if on else 0.0)
    yield states

    pinned = GaugeMetricFamily(
        "netsleuth_bridge_mac_pinned",
        "1 if the bridge has a MAC of its own (addr_assign_type 3), 0 if it "
        "follows the smallest MAC of its ports.",
        labels=["netns", "bridge"],
    )
    ports = CounterMetricFamily(
        "netsleuth_bridge_port_changes",
        "Ports that joined or left the bridge.",
        labels=["netns", "bridge"],
    )
    macs = CounterMetricFamily(
        "netsleuth_bridge_mac_changes",
        "Changes of the bridge's own MAC address.",
        labels=["netns", "bridge"],
    )
    for (netns, bridge), is_pinned in snap.pinned.items():
        pinned.add_metric([netns, bridge], 1.0 if is_pinned else 0.0)
    for key in snap.pinned.keys() | snap.port_changes.keys():
        ports.add_metric(list(key), snap.port_changes.get(key, 0))
        macs.add_metric(list(key), snap.mac_changes.get(key, 0))
    yield pinned
    yield ports
    yield macs

    findings = GaugeMetricFamily(
        "netsleuth_doctor_findings",
        "Findings of the last doctor audit by rule and severity.",
        labels=["rule", "severity"],
    )
    doctor_last = GaugeMetricFamily(
        "netsleuth_doctor_last_run_timestamp_seconds",
        "Wall-clock time of the last doctor audit.",
    )
    for (rule, severity), n in sorted(snap.findings.items()):
        findings.add_metric([rule, severity], n)
    if snap.doctor_last_run is not None:
        doctor_last.add_metric([], snap.doctor_last_run)
    runs = CounterMetricFamily(
        "netsleuth_doctor_runs",
        "Doctor audits by result (error: the host could not be read).",
        labels=["result"],
    )
    if snap.doctor_runs:
        for result in ("ok", "error"):
            runs.add_metric([result], snap.doctor_runs.get(result, 0))
    yield findings
    yield doctor_last
    yield runs

    info = GaugeMetricFamily(
        "netsleuth_build_info",
        "Always 1; the labels say which netsleuth and Python run.",
        labels=["version", "python"],
    )
    info.add_metric([__version__, platform.python_version()], 1.0)
    yield info
