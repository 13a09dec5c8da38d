"""The load faults end to end, through the CLI as a user runs them: ``lab run
--fault ID --store F`` builds the lab, the fault and its build namespace,
then ``report F`` must name exactly that cause with its evidence, and
nothing of the lab may be left behind.

Both cases run at the same time (each in its own namespaces) to keep the
wall time near that of one.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from netsleuth import netns
from netsleuth_testing.labruns import book, farm_runs

pytestmark = pytest.mark.lab

NETSLEUTH = [sys.executable, "-m", "netsleuth"]
DURATION = "25"
CAUSES = ("upstream-rate-limit", "resolver-overload")
book("load", {cause: ["--fault", cause, "--duration", DURATION] for cause in CAUSES})


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], str]]:
    """cause -> (the report's JSON, the lab's run id)."""
    runs = farm_runs("load", tmp_path_factory.mktemp("farm"))
    return {cause: (run.report, run.run_id) for cause, run in runs.items()}


def cause_entry(report: dict[str, Any], cause: str) -> dict[str, Any]:
    return next(c for c in report["causes"] if c["cause"] == cause)


def assert_clean(run_id: str) -> None:
    left = netns.list_named(f"nsl-{run_id}")
    assert left == [], left


def test_a_throttled_resolver_is_named_from_the_hosts_query_load(
    reports: dict[str, tuple[dict[str, Any], str]],
) -> None:
    report, run_id = reports["upstream-rate-limit"]
    v = report["verdict"]
    assert v["cause"] == "upstream-rate-limit", v
    assert v["confidence"] in ("medium", "high")
    assert v["p_value"] is not None and v["p_value"] < 0.01
    evidence = " | ".join(v["evidence"])
    assert "busy seconds" in evidence and "Fisher's exact test" in evidence
    assert "the host control (host) failed in busy seconds too" in evidence
    assert "answers kept coming while busy" in evidence
    assert not cause_entry(report, "resolver-overload")["named"]
    counters = {c["counter"]: c for c in report["counters"]}
    assert counters["link.tx_packets"]["where"] == ["host uplink0"]
    assert "snmp.Udp.RcvbufErrors" not in counters
    assert_clean(run_id)


def test_an_overflowing_local_resolver_is_named_from_its_receive_buffer_errors(
    reports: dict[str, tuple[dict[str, Any], str]],
) -> None:
    report, run_id = reports["resolver-overload"]
    v = report["verdict"]
    assert v["cause"] == "resolver-overload", v
    assert v["confidence"] in ("medium", "high")
    assert v["p_value"] is not None and v["p_value"] < 0.01
    evidence = " | ".join(v["evidence"])
    assert "snmp.Udp.RcvbufErrors rose by" in evidence and "(host)" in evidence
    assert "datagrams dropped in one sample" in evidence
    rate_limit = cause_entry(report, "upstream-rate-limit")
    assert not rate_limit["named"]
    assert any("this host dropped the queries itself" in a for a in rate_limit["evidence_against"])
    counters = {c["counter"]: c for c in report["counters"]}
    assert counters["snmp.Udp.RcvbufErrors"]["where"] == ["host"]
    assert counters["snmp.Udp.RcvbufErrors"]["total"] > 100
    assert_clean(run_id)
