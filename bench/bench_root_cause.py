"""Time to root cause on the lab (run as root): wall time from the start of
`watch` until `report` names ``bridge-mac-flap`` on the lab bridge with
p < 0.001, at default lab rates (20 DNS probes/s per container). The report
is re-run on the growing store every few seconds, as a user would; its own
run time is included. Also: report run time on a store of N probes.

    .venv/bin/python bench/bench_root_cause.py [--churn-mac random|low] [--limit S]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from netsleuth.analysis import analyze
from netsleuth.lab import Churn, LabConfig, build_lab
from netsleuth.store import Store
from netsleuth.watch import WatchConfig, WatchEngine


def time_to_cause(churn_mac: str, limit: float, containers: int, every: float) -> None:
    with build_lab(LabConfig(containers=containers)) as topo, tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "s.sqlite"
        engine = WatchEngine(
            WatchConfig(
                targets=(*(f"netns:{ns}" for ns in topo.container_ns), "host"),
                probes=(f"dns:{topo.dns_server}/{topo.dns_name}/A",),
                rate=20,
                duration=limit,
                host_netns=topo.host_ns,
            ),
            store_path,
        )
        started = time.monotonic()
        thread = threading.Thread(target=engine.run)
        thread.start()
        found = None
        last = None
        with Churn(topo, mac=churn_mac, duration=limit, delay=1.0):  # type: ignore[arg-type]
            while time.monotonic() - started < limit:
                time.sleep(every)
                t0 = time.monotonic()
                with Store(store_path) as store:
                    verdict = analyze(store).verdict
                report_s = time.monotonic() - t0
                last = verdict
                p = verdict.p_value
                print(
                    f"  {time.monotonic() - started:5.1f} s: cause={verdict.cause} "
                    f"bridge={verdict.bridge} p={p if p is None else f'{p:.2g}'} "
                    f"(report took {report_s:.2f} s)"
                )
                if (
                    verdict.cause == "bridge-mac-flap"
                    and verdict.bridge == topo.bridge
                    and p is not None
                    and p < 0.001
                ):
                    found = time.monotonic() - started
                    break
            engine.stop_event.set()
            thread.join()
    if found is None:
        print(
            f"churn {churn_mac}: not named with p < 0.001 within {limit:.0f} s "
            f"(last verdict: {last.cause if last else None})"
        )
    else:
        print(
            f"churn {churn_mac}, {containers} container(s): time to root cause "
            f"{found:.1f} s (goal < 60 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--churn-mac", choices=["random", "low"], action="append")
    parser.add_argument("--limit", type=float, default=120.0)
    parser.add_argument("--containers", type=int, default=1)
    parser.add_argument("--every", type=float, default=5.0)
    args = parser.parse_args()
    print(f"python {platform.python_version()} ({sys.executable}), kernel {platform.release()}")
    for mode in args.churn_mac or ["random", "low"]:
        time_to_cause(mode, args.limit, args.containers, args.every)


if __name__ == "__main__":
    main()
