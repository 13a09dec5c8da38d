"""Benchmarks of `netsleuth watch` in the lab (run as root):

1. sustained DNS probe rate from one target against the lab's dnsmasq, every
   attempt stored, with CPU per 1,000 probes; dnsperf against the same server
   from the same namespace in the same run, as the peer;
2. event latency: a bridge MAC change -> its row committed in the store;
3. RSS of the watch process while it stores 1,000,000 probes.

    .venv/bin/python bench/bench_watch.py [--quick] [--rates 10000,20000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.lab import LabConfig, LabTopology, build_lab
from netsleuth.store import Store
from netsleuth.watch import LiveStats, WatchConfig, WatchEngine


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def probe_rate(topo: LabTopology, tmp: Path, rate: float, seconds: float) -> dict[str, float]:
    engine = WatchEngine(
        WatchConfig(
            targets=(f"netns:{topo.container_ns[0]}",),
            probes=(f"dns:{topo.dns_server}/{topo.dns_name}/A",),
            rate=rate,
            timeout=1.0,
            duration=seconds,
            host_netns=topo.host_ns,
        ),
        tmp / f"rate-{rate:.0f}.sqlite",
    )
    cpu0 = cpu_seconds()
    summary = engine.run()
    cpu = cpu_seconds() - cpu0
    worker = next(iter(summary.worker_stats.values()))
    with Store(tmp / f"rate-{rate:.0f}.sqlite") as store:  # raw rows and column blocks
        wall = store.probe_columns().wall_ns
    stored = len(wall)
    first, last = (int(wall.min()), int(wall.max())) if stored else (0, 0)
    span = (last - first) / 1e9 if stored > 1 else seconds
    return {
        "target_rate": rate,
        "achieved_rate": (stored - 1) / span if stored > 1 else 0.0,
        "stored": stored,
        "failed_pct": 100 * summary.failed / max(1, summary.attempts),
        "late_pct": 100 * worker.get("late", 0) / max(1, worker.get("sent", 1)),
        "max_lag_ms": worker.get("max_lag_ms", 0.0),
        "cpu_ms_per_1000": 1000 * cpu / max(1, summary.attempts) * 1000,
    }


def dnsperf(topo: LabTopology, tmp: Path, seconds: float) -> float:
    queries = tmp / "queries.txt"
    queries.write_text(f"{topo.dns_name} A\n")
    out = subprocess.run(
        netns.exec_argv(
            topo.container_ns[0],
            ["dnsperf", "-s", topo.dns_server, "-d", str(queries), "-l", str(seconds), "-q", "64"],
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def event_latency(topo: LabTopology, tmp: Path, changes: int) -> list[float]:
    """Set a new MAC on a bridge ``changes`` times; time until each row is in the store."""
    store = tmp / "latency.sqlite"
    with IPRoute(netns=topo.host_ns) as ipr:
        ipr.link("add", ifname="benchbr0", kind="bridge")
        idx = ipr.link_lookup(ifname="benchbr0")[0]
    engine = WatchEngine(
        WatchConfig(
            targets=(f"netns:{topo.container_ns[0]}",),
            probes=(f"dns:{topo.dns_server}/{topo.dns_name}/A",),
            rate=10,
            duration=changes * 0.1 + 4,
            host_netns=topo.host_ns,
        ),
        store,
    )
    thread = threading.Thread(target=engine.run)
    thread.start()
    time.sleep(1.5)
    reader = sqlite3.connect(store)
    latencies = []
    with IPRoute(netns=topo.host_ns) as ipr:
        for i in range(changes):
            mac = f"02:be:00:00:{i >> 8:02x}:{i & 0xFF:02x}"
            t0 = time.monotonic()
            ipr.link("set", index=idx, address=mac)
            while time.monotonic() - t0 < 2.0:
                row = reader.execute(
                    "SELECT 1 FROM events WHERE kind='mac-changed' AND ifname='benchbr0'"
                    " AND detail LIKE ?",
                    (f'%"new": "{mac}"%',),
                ).fetchone()
                if row:
                    latencies.append((time.monotonic() - t0) * 1000)
                    break
                time.sleep(0.0002)
            time.sleep(0.05)
    reader.close()
    engine.stop_event.set()
    thread.join()
    return latencies


def rss_over_million(
    topo: LabTopology, tmp: Path, total: int, rate: float
) -> list[tuple[int, float]]:
    marks = [m for m in (10_000, 100_000, 250_000, 500_000, 750_000, 1_000_000) if m <= total]
    samples: list[tuple[int, float]] = []

    def tick(stats: LiveStats, elapsed: float) -> None:
        while marks and stats.attempts >= marks[0]:
            samples.append((marks.pop(0), rss_mb()))

    engine = WatchEngine(
        WatchConfig(
            targets=(f"netns:{topo.container_ns[0]}",),
            probes=(f"dns:{topo.dns_server}/{topo.dns_name}/A",),
            rate=rate,
            count=total,
            host_netns=topo.host_ns,
        ),
        tmp / "million.sqlite",
    )
    engine.run(on_tick=tick, tick_interval=0.2)
    with Store(tmp / "million.sqlite") as store:
        stored = len(store.probe_columns())
    samples.append((stored, rss_mb()))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        help="probe rates of the sweep, comma-separated (default: 2000,5000 with --quick, "
        "5000 to 30000 in steps of 5000 without)",
    )
    parser.add_argument(
        "--seconds", type=float, help="length of each sweep run (default: 2 with --quick, 5)"
    )
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    rates = args.rates or (
        [2000, 5000] if args.quick else [5000, 10000, 15000, 20000, 25000, 30000]
    )
    print(f"python {platform.python_version()} ({sys.executable}), kernel {platform.release()}")
    results: dict[str, object] = {}
    with build_lab(LabConfig()) as topo, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        peer = dnsperf(topo, tmp, int(seconds))
        print(f"dnsperf (-q 64) from the container to dnsmasq: {peer:,.0f} queries/s")
        sweep = []
        for rate in rates:
            r = probe_rate(topo, tmp, rate, seconds)
            sweep.append(r)
            print(
                f"watch at {rate:>6,.0f}/s: achieved {r['achieved_rate']:>8,.0f}/s, "
                f"stored {r['stored']:>7,}, failed {r['failed_pct']:5.2f} %, late(>10 ms) "
                f"{r['late_pct']:5.1f} %, max lag {r['max_lag_ms']:7.1f} ms, "
                f"CPU {r['cpu_ms_per_1000']:5.1f} ms/1000 probes"
            )
        kept = [
            r
            for r in sweep
            if r["achieved_rate"] >= 0.97 * r["target_rate"]
            and r["late_pct"] < 1.0
            and r["failed_pct"] < 0.1
        ]
        best = max((r["achieved_rate"] for r in kept), default=0.0)
        print(
            f"sustained (>=97 % of schedule, <1 % late, <0.1 % failed): {best:,.0f} probes/s "
            f"= {100 * best / peer if peer else 0:.0f} % of dnsperf"
        )
        lat = event_latency(topo, tmp, 20 if args.quick else 100)
        lat_sorted = sorted(lat)
        p99 = lat_sorted[min(len(lat_sorted) - 1, int(0.99 * len(lat_sorted)))] if lat else 0
        print(
            f"event latency MAC change -> stored row: median {statistics.median(lat):.2f} ms, "
            f"p99 {p99:.2f} ms, n={len(lat)}"
        )
        total = 50_000 if args.quick else 1_000_000
        rss = rss_over_million(topo, tmp, total, 20_000)
        print(
            "RSS of the watch process while storing: "
            + ", ".join(f"{n:,} -> {mb:.0f} MB" for n, mb in rss)
        )
        results = {
            "dnsperf_qps": peer,
            "sweep": sweep,
            "sustained": best,
            "event_latency_ms": {"median": statistics.median(lat), "p99": p99},
            "rss_mb": rss,
        }
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
