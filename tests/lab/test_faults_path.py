"""The path faults end to end, through the CLI as a user runs them: ``lab run
--fault ID --store F`` builds the lab and the fault (a second return path
with strict rp_filter, a narrow bridge with ICMP blocked upstream, a
loopback resolver in the containers' resolv.conf), then ``report F`` must
name exactly that cause with its evidence, and nothing of the lab may be
left behind.

The three cases run at the same time (each in its own namespaces) to keep
the wall time near that of the longest.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from netsleuth import netns
from netsleuth.netns.core import NETNS_ETC_DIR
from netsleuth_testing.labruns import book, farm_runs

pytestmark = pytest.mark.lab

NETSLEUTH = [sys.executable, "-m", "netsleuth"]
# rp-filter needs a few of its short, random outages; the others fail from the start
DURATIONS = {"rp-filter": "25", "mtu-blackhole": "15", "resolver-unreachable": "15"}
book("path", {cause: ["--fault", cause, "--duration", d] for cause, d in DURATIONS.items()})


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], str]]:
    """cause -> (the report's JSON, the lab's run id)."""
    runs = farm_runs("path", tmp_path_factory.mktemp("farm"))
    return {cause: (run.report, run.run_id) for cause, run in runs.items()}


def named(report: dict[str, Any]) -> list[str]:
    return [c["cause"] for c in report["causes"] if c["named"]]


def counter(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in report["counters"] if c["counter"] == name]
    assert found, [c["counter"] for c in report["counters"]]
    return found[0]


def assert_clean(run_id: str) -> None:
    left = netns.list_named(f"nsl-{run_id}")
    assert left == [], left
    assert not list(NETNS_ETC_DIR.glob(f"nsl-{run_id}-*"))  # their resolv.conf files too


def test_replies_dropped_by_strict_reverse_path_filtering_name_rp_filter(
    reports: dict[str, tuple[dict[str, Any], str]],
) -> None:
    report, run_id = reports["rp-filter"]
    v = report["verdict"]
    assert v["cause"] == "rp-filter", v
    assert named(report) == ["rp-filter"], named(report)
    assert v["confidence"] in ("low", "medium", "high")
    evidence = " | ".join(v["evidence"])
    assert "netstat.TcpExt.IPReversePathFilter rose by" in evidence
    assert "stretches in which it rose came during outages" in evidence
    assert "rp_filter is strict (1) in the host namespace on" in evidence and "uplink1" in evidence
    assert "netsleuth fix rp-filter uplink1" in v["fix"]
    rp = counter(report, "netstat.TcpExt.IPReversePathFilter")
    assert rp["where"] == ["host"] and rp["met"] >= 2 and rp["total"] > 0
    assert_clean(run_id)


def test_large_answers_lost_on_a_narrow_hop_name_mtu_blackhole(
    reports: dict[str, tuple[dict[str, Any], str]],
) -> None:
    report, run_id = reports["mtu-blackhole"]
    v = report["verdict"]
    assert v["cause"] == "mtu-blackhole", v
    assert named(report) == ["mtu-blackhole"], named(report)
    assert v["confidence"] == "high" and v["p_value"] < 1e-6
    evidence = " | ".join(v["evidence"])
    assert "queries allowing a 4096-byte answer (dns:198.18.255.2/big.lab.test/TXT/edns=4096)" in (
        evidence
    )
    assert "smaller ones to the same server (dns:198.18.255.2/www.lab.test/A)" in evidence
    assert "the host control (host) got" in evidence
    assert "MTUs in the host namespace differ: labbr0 1000" in evidence
    icmp = counter(report, "snmp.Icmp.OutDestUnreachs")
    assert icmp["where"] == ["host"] and icmp["total"] > 0
    assert_clean(run_id)


def test_a_loopback_resolver_in_the_containers_names_resolver_unreachable(
    reports: dict[str, tuple[dict[str, Any], str]],
) -> None:
    report, run_id = reports["resolver-unreachable"]
    v = report["verdict"]
    assert v["cause"] == "resolver-unreachable", v
    assert named(report) == ["resolver-unreachable"], named(report)
    assert v["confidence"] == "high" and v["p_value"] < 1e-6
    evidence = " | ".join(v["evidence"])
    assert f"netns:nsl-{run_id}-c0: " in evidence
    assert "queries to 127.0.0.53, the nameserver of its resolv.conf (127.0.0.53) failed" in (
        evidence
    )
    assert "refused at once" in evidence
    assert "the host control (host) got answers from 198.18.255.2" in evidence
    assert_clean(run_id)
