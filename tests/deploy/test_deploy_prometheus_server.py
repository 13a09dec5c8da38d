"""A real Prometheus server scrapes a netsleuth endpoint; every dashboard
query and every rule evaluates against it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from netsleuth.metrics import WatchMetrics, serve
from netsleuth.model import EventKind, NetEvent, Outcome, ProbeResult

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "netsleuth-dashboard.json"


def grafana_to_promql(expr: str) -> str:
    """Replace the Grafana variables the dashboard uses with concrete values."""
    return (
        expr.replace("$__rate_interval", "10s").replace("$__range", "1m").replace("$instance", ".*")
    )


def value(sample: dict[str, Any]) -> float:
    return float(sample["value"][1])


@pytest.mark.prometheus
def test_prometheus_scrapes_endpoint_and_dashboard_queries_evaluate(
    prometheus_server: Any,
) -> None:
    metrics = WatchMetrics()
    metrics.set_bridge("br-test", pinned=False)
    stop = threading.Event()

    def feed() -> None:  # c1: 1 attempt in 11 times out while ports churn
        for i in range(1, 3000):
            if stop.wait(0.1):
                return
            batch = [
                ProbeResult(0, 0, "c1", "dns", "198.18.0.1", Outcome.OK, 300_000),
                ProbeResult(0, 0, "host", "dns", "198.18.0.1", Outcome.OK, 200_000),
            ]
            if i % 10 == 0:
                batch.append(ProbeResult(0, 0, "c1", "dns", "198.18.0.1", Outcome.TIMEOUT))
                metrics.observe_event(NetEvent(0, 0, "host", EventKind.PORT_LEFT, "v", "br-test"))
            metrics.observe_batch(batch)

    feeder = threading.Thread(target=feed)
    with serve("127.0.0.1:0", metrics.registry) as endpoint:
        feeder.start()
        try:
            prom = prometheus_server([f"127.0.0.1:{endpoint.port}"])
            up = prom.wait_for('up{job="netsleuth"}', lambda r: bool(r) and value(r[0]) == 1, 20)
            assert up and value(up[0]) == 1, up
            # The recording rules run and see failures for c1 only.
            ratio = prom.wait_for(
                "netsleuth:probe_failure_ratio:rate5m",
                lambda r: any(value(s) > 0 for s in r),
                30,
            )
            by_target = {s["metric"]["target"]: value(s) for s in ratio}
            assert 0.03 < by_target["c1"] < 0.2, by_target
            assert by_target["host"] == 0
            # The unpinned bridge with churn fires its alert.
            alerts = prom.wait_for(
                'ALERTS{alertname="NetsleuthBridgeMacUnpinnedWithChurn"}', bool, 20
            )
            assert alerts and alerts[0]["metric"]["bridge"] == "br-test"
            # Every dashboard query is valid PromQL and the main ones return data.
            doc = json.loads(DASHBOARD.read_text())
            for panel in doc["panels"]:
                for target in panel.get("targets", []):
                    result = prom.query(grafana_to_promql(target["expr"]))
                    if panel["title"] in {
                        "Probe failure ratio per host and target",
                        "Failed probes in range",
                        "Bridges: MAC pinned?",
                        "Hosts by netsleuth version",
                    }:
                        assert result, panel["title"]
            # The Host variable: label_values(netsleuth_build_info, instance).
            hosts = prom.api("label/instance/values", **{"match[]": "netsleuth_build_info"})
            assert hosts == [f"127.0.0.1:{endpoint.port}"]
            for annotation in doc["annotations"]["list"]:
                if "expr" in annotation:
                    prom.query(grafana_to_promql(annotation["expr"]))
        finally:
            stop.set()
            feeder.join()
