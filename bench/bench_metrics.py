"""Cost of the Prometheus metrics at 10 targets x 4 probes.

Measures, in one run and on one interpreter:

1. ``WatchMetrics.observe_batch`` per result, against the peer way of doing it
   with prometheus-client's own ``Counter``/``Histogram`` (one ``labels()``
   and ``inc()``/``observe()`` per result);
2. scrape time of the endpoint over loopback HTTP (``serve()`` + urllib), and
   the size of the exposition, against the same series held in
   prometheus-client's own metric objects and served the same way;
3. CPU the metrics add to a watch: results fed at a fixed rate (10 targets x
   4 probes x RATE per second, in 100 ms batches) while a scraper fetches
   /metrics every SCRAPE seconds; CPU seconds per wall second of this process;
4. with --real (root): the real thing. A lab with 10 container namespaces
   (pinned bridge, no churn), the watch engine probing 4 probes from each
   (dns A, resolve, tcp:53, icmp to the gateway) at RATE/s, once without
   metrics and once with WatchMetrics served and scraped every SCRAPE s:
   CPU of the engine process and of its probe workers, and scrape times.

Run: .venv/bin/python bench/bench_metrics.py [--seconds 10] [--rate 10] [--real]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from netsleuth.metrics import LATENCY_BUCKETS, WatchMetrics, serve
from netsleuth.model import EventKind, NetEvent, Outcome, ProbeResult

TARGETS = [f"c{i}" for i in range(9)] + ["host"]
PROBES = [("dns", "198.18.0.1"), ("dns", "198.18.0.2"), ("resolve", "stub"), ("tcp", "198.18.0.1")]


def synthetic(n: int, seed: int = 1) -> list[ProbeResult]:
    rng = random.Random(seed)
    out = []
    now = time.time_ns()
    for i in range(n):
        target = TARGETS[i % len(TARGETS)]
        probe, server = PROBES[(i // len(TARGETS)) % len(PROBES)]
        if rng.random() < 0.05:
            out.append(ProbeResult(now + i, i, target, probe, server, Outcome.TIMEOUT))
        else:
            latency = int(rng.lognormvariate(12.5, 0.6))  # ~270 us median
            out.append(ProbeResult(now + i, i, target, probe, server, Outcome.OK, latency))
    return out


class PeerMetrics:
    """The same metrics kept with prometheus-client's own metric objects."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter(
            "netsleuth_probe_attempts",
            "attempts",
            ["target", "probe", "server", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "netsleuth_probe_latency_seconds",
            "latency",
            ["target", "probe", "server"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_batch(self, results: list[ProbeResult]) -> None:
        for r in results:
            self.attempts.labels(r.target, r.probe, r.server, r.outcome.label).inc()
            if r.latency_ns is not None:
                self.latency.labels(r.target, r.probe, r.server).observe(r.latency_ns / 1e9)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_result(feed: Callable[[list[ProbeResult]], None], batch: list[ProbeResult]) -> float:
    """Best of 5: CPU ns per result."""
    best = float("inf")
    for _ in range(5):
        start = time.process_time_ns()
        feed(batch)
        best = min(best, (time.process_time_ns() - start) / len(batch))
    return best


def scrape_times(url: str, n: int) -> tuple[list[float], int]:
    times = []
    size = 0
    for _ in range(n):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as response:
            size = len(response.read())
        times.append(time.perf_counter() - start)
    return times, size


class Scraper:
    """Fetches ``url`` every ``every`` seconds in a thread it owns and joins."""

    def __init__(self, url: str, every: float) -> None:
        self.url = url
        self.every = every
        self.times: list[float] = []
        self.size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            got, self.size = scrape_times(self.url, 1)
            self.times.extend(got)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_run(
    factory: Callable[[], WatchMetrics | PeerMetrics],
    per_second: float,
    seconds: float,
    every: float,
) -> tuple[float, float, int]:
    """CPU share while feeding ``per_second`` results and scraping every ``every`` s."""
    metrics = factory()
    batch = synthetic(round(per_second / 10))
    with serve("127.0.0.1:0", metrics.registry) as server:
        idle_start, idle_cpu = time.monotonic(), cpu()
        time.sleep(min(2.0, seconds))
        idle = (cpu() - idle_cpu) / (time.monotonic() - idle_start)
        with Scraper(server.url, every) as scraper:
            start, start_cpu = time.monotonic(), cpu()
            tick = start
            while tick < start + seconds:
                metrics.observe_batch(batch)
                tick += 0.1
                time.sleep(max(0.0, tick - time.monotonic()))
            used = (cpu() - start_cpu) / (time.monotonic() - start)
    scrapes = len(scraper.times)
    return used, idle, scrapes


def real_runs(seconds: float, rate: float, every: float) -> None:
    """Part 4: the watch engine on a lab of 10 containers, without and with metrics."""
    import tempfile
    from pathlib import Path

    from netsleuth.lab import LabConfig, build_lab
    from netsleuth.watch import WatchConfig, WatchEngine

    with (
        tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp,
        build_lab(LabConfig(containers=10, pin_mac=True, seed=1)) as topo,
    ):
        probes = (
            f"dns:{topo.dns_server}/{topo.dns_name}/A",
            f"resolve:{topo.dns_name}",
            f"tcp:{topo.dns_server}:53",
            f"icmp:{topo.gateway}",
        )
        for with_metrics in (False, True):
            config = WatchConfig(
                targets=tuple(f"netns:{ns}" for ns in topo.container_ns),
                probes=probes,
                rate=rate,
                timeout=1.0,
                duration=seconds,
                host_netns=topo.host_ns,
                label="bench metrics",
            )
            metrics = WatchMetrics() if with_metrics else None
            engine = WatchEngine(
                config,
                Path(tmp) / f"run{int(with_metrics)}.sqlite",
                observers=[metrics] if metrics else [],
            )
            self0 = resource.getrusage(resource.RUSAGE_SELF)
            kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.monotonic()
            times: list[float] = []
            size = 0
            if metrics is not None:
                with (
                    serve("127.0.0.1:0", metrics.registry) as server,
                    Scraper(server.url, every) as scraper,
                ):
                    summary = engine.run()
                times, size = scraper.times, scraper.size
            else:
                summary = engine.run()
            wall = time.monotonic() - start
            self1 = resource.getrusage(resource.RUSAGE_SELF)
            kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            parent = (self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime) / wall
            workers = (kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime) / wall
            label = "with metrics   " if metrics else "without metrics"
            line = (
                f"   {label}: {summary.attempts / summary.seconds:6.0f} attempts/s, "
                f"{summary.failed} failed; engine process {parent * 100:5.1f} % of a core, "
                f"probe workers {workers * 100:5.1f} %"
            )
            if times:
                line += (
                    f"; {len(times)} scrapes, median {statistics.median(times) * 1e3:.2f} ms,"
                    f" max {max(times) * 1e3:.2f} ms, {size} bytes"
                )
            print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the CPU run")
    parser.add_argument("--rate", type=float, default=10.0, help="probes/s per target and probe")
    parser.add_argument("--scrape", type=float, default=1.0, help="seconds between scrapes")
    parser.add_argument(
        "--real", action="store_true", help="also run the watch engine on a lab (root)"
    )
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]} ({sys.executable})")
    print(f"series: {len(TARGETS)} targets x {len(PROBES)} probes")

    print("\n1. feeding results (CPU per result, best of 5)")
    for size in (100, 1000, 5000):
        batch = synthetic(size)
        ours = per_result(WatchMetrics().observe_batch, batch)
        peer = per_result(PeerMetrics().observe_batch, batch)
        print(
            f"   batch {size:5d}: WatchMetrics {ours:6.0f} ns/result, "
            f"prometheus-client objects {peer:6.0f} ns/result, ratio {peer / ours:4.1f}x"
        )

    print("\n2. scrape over loopback HTTP (200 scrapes each)")
    ours_m = WatchMetrics()
    peer_m = PeerMetrics()
    data = synthetic(20_000)
    ours_m.observe_batch(data)
    peer_m.observe_batch(data)
    for i in range(200):  # events from churn: bounded labels
        ours_m.observe_event(NetEvent(0, 0, "host", EventKind.PORT_JOINED, f"veth{i}", "br0"))
        ours_m.observe_event(NetEvent(0, 0, "host", EventKind.PORT_LEFT, f"veth{i}", "br0"))
    ours_m.set_bridge("br0", pinned=False)
    results = {}
    for name, registry in (("WatchMetrics", ours_m.registry), ("peer", peer_m.registry)):
        with serve("127.0.0.1:0", registry) as server:
            scrape_times(server.url, 10)  # warm up
            times, size = scrape_times(server.url, 200)
        results[name] = times
        q = statistics.quantiles(times, n=100)
        print(
            f"   {name:12s}: median {statistics.median(times) * 1e3:5.2f} ms, "
            f"p99 {q[98] * 1e3:5.2f} ms, {size} bytes"
        )
    ratio = statistics.median(results["peer"]) / statistics.median(results["WatchMetrics"])
    print(f"   peer / WatchMetrics median scrape time: {ratio:4.2f}x")

    per_second = len(TARGETS) * len(PROBES) * args.rate
    print(
        f"\n3. CPU of metrics in a watch: {per_second:.0f} results/s in 100 ms batches, "
        f"a scrape every {args.scrape:g} s, {args.seconds:g} s"
    )
    for name, factory in (("WatchMetrics", WatchMetrics), ("peer", PeerMetrics)):
        used, idle, scrapes = cpu_run(factory, per_second, args.seconds, args.scrape)
        print(
            f"   {name:12s}: {used * 100:5.2f} % of one core "
            f"(idle server {idle * 100:4.2f} %), {scrapes} scrapes"
        )
    if args.real:
        print(
            f"\n4. watch engine on a lab: 10 containers x 4 probes at {args.rate:g}/s, "
            f"{args.seconds:g} s per run"
        )
        real_runs(args.seconds, args.rate, args.scrape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
