"""Time to root cause on the lab (run as root): wall time from the start of
`watch` until `report` names ``bridge-mac-flap`` on the lab bridge, with one
container probing (as in the reference) at 20 DNS probes/s and the lab's
churn. The watch is given only the container: it finds the bridge's
namespace and adds the host control by itself. `report` is re-run on the
growing store every ``--every`` seconds, as a user would; its own run time is
included. For each run: when the first outage began and ended, when the
verdict came, and whether it came at the first report after the first outage
ended (the goal), with the median over the runs.

    .venv/bin/python bench/bench_root_cause.py [--runs 5] [--churn-mac random|low] [--every 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from netsleuth.analysis import analyze
from netsleuth.lab import Churn, LabConfig, build_lab
from netsleuth.store import Store
from netsleuth.watch import WatchConfig, WatchEngine


@dataclass
class RunResult:
    first_outage_s: float | None
    first_outage_end_s: float | None
    verdict_s: float | None
    reports_before: int  # reports after the first outage ended that did not name it
    confidence: str | None
    report_s: float


def one_run(churn_mac: str, limit: float, every: float, seed: int) -> RunResult:
    with (
        build_lab(LabConfig(containers=1, seed=seed)) as topo,
        tempfile.TemporaryDirectory() as tmp,
    ):
        store_path = Path(tmp) / "s.sqlite"
        engine = WatchEngine(
            WatchConfig(
                targets=(f"netns:{topo.container_ns[0]}",),
                probes=(f"dns:{topo.dns_server}/{topo.dns_name}/A",),
                rate=20,
                duration=limit,
            ),
            store_path,
        )
        target = f"netns:{topo.container_ns[0]}"
        started_wall = time.time_ns()
        started = time.monotonic()
        thread = threading.Thread(target=engine.run)
        thread.start()
        result = RunResult(None, None, None, 0, None, 0.0)
        reports = []
        with Churn(topo, mac=churn_mac, duration=limit, delay=1.0, seed=seed):  # type: ignore[arg-type]
            while time.monotonic() - started < limit:
                time.sleep(every)
                if not store_path.exists():
                    continue
                t0 = time.monotonic()
                with Store(store_path) as store:
                    a = analyze(store)
                reports.append(time.monotonic() - t0)
                now = time.monotonic() - started
                outages = [
                    d.episode
                    for d in a.episodes
                    if d.episode.target == target and d.episode.failed >= 2
                ]
                if outages and result.first_outage_s is None:
                    result.first_outage_s = (outages[0].start_ns - started_wall) / 1e9
                ended = [e for e in outages if e.recovered_ns is not None]
                if ended and result.first_outage_end_s is None:
                    result.first_outage_end_s = (ended[0].recovered_ns - started_wall) / 1e9  # type: ignore[operator]
                v = a.verdict
                named = v.cause == "bridge-mac-flap" and v.bridge == topo.bridge
                print(
                    f"    {now:5.1f} s: cause={v.cause} bridge={v.bridge} "
                    f"confidence={v.confidence} (report took {reports[-1]:.2f} s)"
                )
                if named:
                    result.verdict_s = now
                    result.confidence = v.confidence
                    break
                if ended:
                    result.reports_before += 1
            engine.stop_event.set()
            thread.join()
        result.report_s = max(reports, default=0.0)
        return result


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:5.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--churn-mac", choices=["random", "low"], default="random")
    parser.add_argument("--limit", type=float, default=90.0)
    parser.add_argument("--every", type=float, default=2.0)
    args = parser.parse_args()
    print(f"python {platform.python_version()} ({sys.executable}), kernel {platform.release()}")
    print(f"churn {args.churn_mac}, one container at 20 probes/s, report every {args.every:g} s")
    results = []
    for i in range(args.runs):
        print(f"  run {i + 1} (seed {100 + i}):")
        r = one_run(args.churn_mac, args.limit, args.every, seed=100 + i)
        results.append(r)
        print(
            f"  run {i + 1}: first outage began {_s(r.first_outage_s)}, ended "
            f"{_s(r.first_outage_end_s)}; verdict at {_s(r.verdict_s)} ({r.confidence}); "
            f"reports after the first outage that missed it: {r.reports_before}; "
            f"slowest report {r.report_s:.2f} s"
        )
    times = [r.verdict_s for r in results if r.verdict_s is not None]
    first = sum(1 for r in results if r.verdict_s is not None and r.reports_before == 0)
    median = statistics.median(times) if times else None
    print(
        f"named in {len(times)}/{len(results)} runs; at the first report after the first "
        f"outage ended in {first}/{len(results)}; median time to verdict {_s(median)} "
        "(goal: first report after the first outage, median < 20 s)"
    )


if __name__ == "__main__":
    main()
