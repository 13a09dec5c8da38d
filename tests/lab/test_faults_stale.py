"""``stale-conntrack-nat`` end to end, through the CLI as a user runs it: a
few flaps of the unpinned lab bridge with br_netfilter on leave conntrack
entries without NAT, later queries from the same ports are lost one by one,
``watch`` records the entries (``ct.unnated_unreplied`` in the host
namespace), and ``report`` names the cause, with the flap that left the
entries second and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from netsleuth import netns
from netsleuth.analysis.unnated import UNNATED
from netsleuth.model import CounterSample, EventKind
from netsleuth.store import Store
from netsleuth_testing.labruns import LabRun, book, farm_runs

pytestmark = pytest.mark.lab

FAULT = "stale-conntrack-nat"
book("stale", {FAULT: ["--fault", FAULT, "--seed", "7", "--duration", "30"]})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> LabRun:
    runs = farm_runs("stale", tmp_path_factory.mktemp("farm"))
    return runs[FAULT]


def _named(report: dict[str, Any]) -> list[str]:
    return [c["cause"] for c in report["causes"] if c["named"]]


def test_single_losses_after_the_flaps_name_the_stale_entries(run: LabRun) -> None:
    report = run.report
    v = report["verdict"]
    assert v["cause"] == FAULT, (v, _named(report))
    assert _named(report) == [FAULT, "bridge-mac-flap"]  # the flap that left them, second
    assert v["p_value"] is not None and v["p_value"] < 0.01
    evidence = " | ".join(v["evidence"])
    assert "short losses" in evidence and "came while such entries were present" in evidence
    assert "not NATed (host;" in evidence
    assert "netsleuth fix bridge labbr0" in v["fix"]


def test_watch_recorded_the_entries_in_the_host_namespace(run: LabRun) -> None:
    with Store(run.store) as store:
        levels = [
            (e.netns, e.detail.levels[UNNATED])
            for e in store.events()
            if e.kind is EventKind.COUNTERS
            and isinstance(e.detail, CounterSample)
            and UNNATED in e.detail.levels
        ]
    assert levels and {ns for ns, _ in levels} == {"host"}, levels
    assert max(v for _, v in levels) >= 20  # one per flooded query, a flap floods ~100


def test_nothing_of_the_lab_is_left(run: LabRun) -> None:
    assert netns.list_named(f"nsl-{run.run_id}") == []
