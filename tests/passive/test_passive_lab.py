"""Must show: a workload of its own sends DNS queries from a container
namespace of the lab during low-MAC churn (bridge-mac-flap); ``watch
--passive`` sees every one of them on the bridge, and its failed count for
that client equals the workload's own count of unanswered queries within 2 %."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netsleuth import netns
from netsleuth.analysis import analyze
from netsleuth.lab import Churn, LabConfig, build_lab
from netsleuth.model import Outcome
from netsleuth.passive import is_passive
from netsleuth.passive.watch import FACT_KIND
from netsleuth.report import to_json
from netsleuth.store import Store
from netsleuth.watch import WatchConfig, WatchEngine, WatchSummary

pytestmark = pytest.mark.lab

WORKLOAD = Path(__file__).with_name("workload.py")
RATE, SECONDS, TIMEOUT = 50.0, 14.0, 1.0


def test_passive_counts_what_the_workload_counts(tmp_path: Path) -> None:
    store_path = tmp_path / "passive.sqlite"
    with build_lab(LabConfig(containers=1)) as topo:
        client_ns = topo.container_ns[0]
        engine = WatchEngine(
            WatchConfig(
                targets=(),
                probes=(),
                passive=(),
                host_netns=topo.host_ns,
                timeout=TIMEOUT,
                duration=SECONDS + TIMEOUT + 6.0,
                counters=0,
                drops=False,
                control=False,
            ),
            store_path,
        )
        box: dict[str, WatchSummary] = {}
        thread = threading.Thread(target=lambda: box.update(s=engine.run()))
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not engine.passive_status and time.monotonic() < deadline:
                time.sleep(0.05)
            assert engine.passive_status, "the passive source did not start"
            argv = netns.exec_argv(
                client_ns,
                [sys.executable, str(WORKLOAD), topo.dns_server, topo.dns_name,
                 str(RATE), str(SECONDS), str(TIMEOUT)],
            )  # fmt: skip
            with Churn(topo, mac="low", t_in=2.0, t_out=1.0, duration=SECONDS - 2, delay=1.0):
                out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
        finally:
            thread.join(60)
        assert not thread.is_alive()
    counted = json.loads(out.stdout)
    with Store(store_path) as store:
        series = {k: s for k, s in store.series().items() if is_passive(s.probe)}
        cols = store.probe_columns()
        facts = [f for f in store.facts() if f["kind"] == FACT_KIND]
    label = f"netns:{client_ns}"
    mine = [k for k, s in series.items() if s.target == label]
    assert mine, f"no passive series of {label}: {[s.target for s in series.values()]}"
    assert {series[k].probe for k in mine} == {"passive:dns/A"}
    assert {series[k].server for k in mine} == {topo.dns_server}
    rows = [i for i, s in enumerate(cols.series.tolist()) if s in mine]
    outcomes = [Outcome(int(cols.outcome[i])) for i in rows]
    observed = len(outcomes)
    failed = sum(o.failed for o in outcomes)
    summary = facts[-1]["data"]
    print(f"workload {counted}; passive observed {observed}, failed {failed}; {summary}")
    assert counted["sent"] == int(RATE * SECONDS)
    assert counted["unanswered"] >= 50, "the churn did not make the workload fail"
    assert counted["answered"] >= 50
    assert all(i["kernel_drops"] == 0 for i in summary["interfaces"])
    assert abs(observed - counted["sent"]) <= 0.02 * counted["sent"]
    assert abs(failed - counted["unanswered"]) <= 0.02 * counted["unanswered"]
    assert box["s"].failed == failed
    # report: the same figures, said to come from real traffic
    with Store(store_path) as store:
        report = to_json(analyze(store))
    assert report["real_queries"] == observed and report["real_queries_failed"] == failed
    assert {s["source"] for s in report["series"]} == {"passive"}
    assert any(t["target"] == label and t["failed"] == failed for t in report["targets"])
