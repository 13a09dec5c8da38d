"""The causes replayed from a recording: ``lab run --fault ID`` writes the
scenario (no namespaces, no sleeping), says plainly that it is a replay, and
``report`` names exactly ID from what it wrote; the same seed writes the same
store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netsleuth.lab.faults import FAULTS
from netsleuth.model import CounterSample, EventKind
from netsleuth.store import Store

pytestmark = pytest.mark.lab  # `lab run` wants root, as every lab case

RECORDED = ("conntrack-race", "conntrack-full", "neighbour-table-full")
DURATION = "90"  # a replay takes about a second whatever its length


def netsleuth(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netsleuth", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lab_run(store: Path, fault: str, seed: int, containers: int = 2) -> dict[str, Any]:
    proc = netsleuth(
        "lab", "run", "--fault", fault, "--seed", str(seed), "--duration", DURATION,
        "--containers", str(containers), "--store", str(store), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "replayed, not live" in proc.stderr
    assert "not a live reproduction" in proc.stderr
    case: dict[str, Any] = json.loads(proc.stdout)["cases"][0]
    return case


def rows(store: Path) -> tuple[list[Any], list[Any], list[Any]]:
    """Probes, events and facts, without the instant the replay was written."""
    with Store(store) as s:
        series = s.series()
        cols = s.probe_columns()
        probes = list(
            zip(
                [series[i].target for i in cols.series.tolist()],
                cols.wall_ns.tolist(),
                cols.outcome.tolist(),
                cols.latency_ns.tolist(),
                strict=True,
            )
        )
        events = [
            (e.wall_ns, e.netns, str(e.kind), e.ifname, e.subject, e.detail.to_json())
            for e in s.events()
        ]
        facts = [(f["netns"], f["kind"], f["subject"], f["data"]) for f in s.facts()]
    return probes, events, facts


@pytest.mark.parametrize("fault", RECORDED)
def test_a_replayed_cause_is_named_by_report_and_says_it_is_a_replay(
    tmp_path: Path, fault: str
) -> None:
    spec = FAULTS[fault]
    assert spec.recorded and spec.start is None
    store = tmp_path / f"{fault}.sqlite"
    case = lab_run(store, fault, seed=11)
    assert case["recorded"] == spec.recorded
    assert "not a live reproduction" in case["note"]
    assert case["extra"]["engine"] == "recorded"
    assert case["failed"] > 0 and case["probes"] >= 2 * 20 * 89  # 2 containers, 20/s, 90 s
    with Store(store) as s:
        run = s.runs()[-1]
        assert run.args["replayed"] is True and run.args["fault"] == fault
        assert run.args["host_netns"] is None and run.args["control"] == "host"
        counters = [e for e in s.events() if e.kind is EventKind.COUNTERS]
        assert counters and {e.netns for e in counters} == {"host"}
    proc = netsleuth("report", str(store), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["verdict"]["cause"] == fault, report["verdict"]
    assert [c["cause"] for c in report["causes"] if c["named"]] == [fault]
    assert report["verdict"]["p_value"] < 0.01


def test_the_same_seed_writes_the_same_store_and_another_seed_another(tmp_path: Path) -> None:
    first, second, other = (tmp_path / f"{n}.sqlite" for n in ("a", "b", "c"))
    lab_run(first, "neighbour-table-full", seed=5, containers=1)
    lab_run(second, "neighbour-table-full", seed=5, containers=1)
    lab_run(other, "neighbour-table-full", seed=6, containers=1)
    a, b, c = rows(first), rows(second), rows(other)
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]


def test_the_replay_records_what_the_cause_does(tmp_path: Path) -> None:
    """Counters as the sampler writes them: only rises, the ct levels beside a
    conntrack rise, arp.entries beside an arp rise, all in the host namespace."""
    store = tmp_path / "full.sqlite"
    lab_run(store, "conntrack-full", seed=3)
    with Store(store) as s:
        samples = [e.detail for e in s.events() if isinstance(e.detail, CounterSample)]
        probes = s.probes()
    drops = [x for x in samples if "ct.drop" in x.deltas]
    assert drops and all(x.levels.get("ct.max") == 65_536 for x in drops)
    assert max(x.levels["ct.count"] for x in drops) == 65_536
    assert all(v > 0 for x in samples for v in x.deltas.values())
    # the namespaces time out; the host control's own sends are refused (EPERM)
    lost = {(p.target == "host", p.outcome.label) for p in probes if p.outcome.failed}
    assert lost == {(False, "timeout"), (True, "error")}
