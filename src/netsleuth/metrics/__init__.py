"""Prometheus metrics: what a watch or exporter run exports to a fleet.

Data flows in one direction::

    watch engine ──observe_batch(results)──┐
                 ──observe_event(event)────┤
    doctor       ──set_findings / set_bridge ─► WatchMetrics (counters under one lock)
    invariant    ──set_invariant───────────┘          │ collect() at scrape time
                                                      ▼
                              serve(addr, registry) ─► GET /metrics ─► Prometheus

:class:`WatchMetrics` is a prometheus-client ``Collector``: feeding it only
adds to plain counters; metric families are built when Prometheus scrapes.
Label values are bounded (:mod:`netsleuth.metrics.labels`): no per-query
labels, and churning interface names collapse to their bridge or prefix.
:class:`netsleuth.metrics.exporter.DoctorLoop` is the periodic ``doctor`` of
``netsleuth exporter`` (import it from there: it pulls in the audit package).
Prometheus, Alertmanager and Grafana do the rest; the rules and the dashboard
live in ``deploy/``, their documentation in docs/fleet.md.
"""

from netsleuth.metrics.collector import LATENCY_BUCKETS, WatchMetrics, new_registry
from netsleuth.metrics.labels import BoundedValues, InterfaceLabels
from netsleuth.metrics.server import DEFAULT_ADDR, DEFAULT_PORT, MetricsServer, parse_addr, serve

__all__ = [
    "DEFAULT_ADDR",
    "DEFAULT_PORT",
    "LATENCY_BUCKETS",
    "BoundedValues",
    "InterfaceLabels",
    "MetricsServer",
    "WatchMetrics",
    "new_registry",
    "parse_addr",
    "serve",
]
