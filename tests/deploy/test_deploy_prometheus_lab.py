"""The must-show test: a real Prometheus server scrapes a watch of the lab
and sees the failures of the unpinned bridge under churn (low MACs) through
a PromQL query; with the bridge pinned, the same churn gives no failures.
The watch is the real command line, ``netsleuth watch --metrics``, run as a
child process against a lab built through the lab's API."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netsleuth.lab import Churn, LabConfig, build_lab

SECONDS = 12.0


def watch_lab(store: Path, port: int, *, pin_mac: bool) -> None:
    """Build the lab, churn ports with low MACs, and run `netsleuth watch
    --metrics` (a child process, by PID) against it for SECONDS."""
    with build_lab(LabConfig(containers=1, pin_mac=pin_mac, seed=7)) as topo:
        argv = [
            sys.executable, "-m", "netsleuth", "watch", "--quiet",
            *(f"--target=netns:{ns}" for ns in topo.container_ns),
            f"--probe=dns:{topo.dns_server}/{topo.dns_name}/A",
            "--rate=20", "--timeout=1", f"--duration={SECONDS}",
            f"--host-netns={topo.host_ns}", f"--store={store}",
            f"--metrics=127.0.0.1:{port}",
        ]  # fmt: skip
        with Churn(topo, mac="low", duration=SECONDS, seed=7):
            watch = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                _, err = watch.communicate(timeout=SECONDS + 60)
            finally:
                if watch.poll() is None:
                    watch.kill()
                    watch.wait(timeout=10)
        assert watch.returncode == 0, err.decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


@pytest.mark.lab
@pytest.mark.prometheus
def test_prometheus_sees_failures_of_the_unpinned_lab_only(
    prometheus_server: Any, tmp_path: Path
) -> None:
    a, b = free_port(), free_port()
    prom = prometheus_server([f"127.0.0.1:{a}", f"127.0.0.1:{b}"])
    watch_lab(tmp_path / "unpinned.sqlite", a, pin_mac=False)
    watch_lab(tmp_path / "pinned.sqlite", b, pin_mac=True)
    # Both watches have exited: their series are stale now, so read the last
    # scraped values through range selectors.

    def ratios(port: int) -> tuple[float, float]:
        inst = f'instance="127.0.0.1:{port}"'
        # The recording rule the alerts use (deploy/prometheus/alerts.yml), last
        # evaluated while the watch ran; it misses attempts made before
        # Prometheus first saw the series.
        rule = value(
            prom.query(f"last_over_time(netsleuth:probe_failure_ratio:rate5m{{{inst}}}[2m])")
        )
        # The whole run: the counters' last values.
        whole = value(
            prom.query(
                f'sum(last_over_time(netsleuth_probe_attempts_total{{{inst},outcome!~"ok|nxdomain"}}[2m]))'
                f" / sum(last_over_time(netsleuth_probe_attempts_total{{{inst}}}[2m]))"
            )
        )
        return rule, whole

    total = prom.query(
        f'sum(last_over_time(netsleuth_probe_attempts_total{{instance="127.0.0.1:{a}"}}[2m]))'
    )
    assert value(total) >= SECONDS * 20 * 0.5, total
    (bad_rule, bad), (good_rule, good) = ratios(a), ratios(b)
    print(
        f"failure ratio through PromQL: unpinned {bad:.1%} of the run "
        f"(rate5m rule {bad_rule:.1%}), pinned {good:.1%} (rule {good_rule:.1%})"
    )
    assert bad > 0.05 and bad_rule > 0.05, (bad, bad_rule)
    # Pinned, the same churn costs nothing (a rare timeout on a loaded machine aside).
    assert good <= 0.01 and good_rule <= 0.01, (good, good_rule)
    # The bridge's pinned state came from its MAC-change events.
    state = prom.query(
        f'last_over_time(netsleuth_bridge_mac_pinned{{instance="127.0.0.1:{a}"}}[2m])'
    )
    assert value(state) == 0, state
