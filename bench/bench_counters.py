"""Cost of sampling the kernel loss counters of many watched namespaces (run
as root). Issue 13: sampling 20 namespaces once a second must take less than
2 % of one core.

Builds ``--namespaces`` namespaces (``nsl-bc<id>-NN``, each a veth on a bridge
in a hub namespace that plays "host"; removed at the end, also on Ctrl-C),
sends some traffic in half of them (a separate process: datagrams to closed
ports, so counters rise and events are written, plus pings), then:

1. runs netsleuth's :class:`~netsleuth.watch.counters.CounterSampler` at 1 s
   for ``--seconds``: CPU of its thread (``busy_s``, thread CPU time) and of
   the whole process (``time.process_time``) as % of one core, and µs per
   namespace per sample;
2. the peer, what a user would script for the same numbers, for
   ``--peer-seconds`` each at 1 s: (a) per namespace ``ip -s -s -j link
   show`` + ``nstat -asz --json`` + ``cat`` of the conntrack stat/count/max
   through ``ip netns exec`` subprocesses, parsed; (b) pyroute2
   ``IPRoute(netns=NS).get_links()`` + the same /proc files read after a
   ``setns`` each time. Their CPU (own + children) per namespace per sample,
   and the ratio to netsleuth's;
3. a check that netsleuth's reader and nstat/ip agree on a quiet namespace.

    .venv/bin/python bench/bench_counters.py [--namespaces 20] [--seconds 30]
        [--peer-seconds 10] [--no-traffic] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from netsleuth import netns
from netsleuth.model import NetEvent
from netsleuth.netns import Namespace
from netsleuth.netns.counters import CounterReader
from netsleuth.watch.counters import CounterSampler

PREFIX = "nsl-bc"
HUB_ADDR = "198.18.100.1"
TARGET = 2.0  # % of one core, the limit
MAIN_PID = os.getpid()


# -- the namespaces ---------------------------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Bench:
    tag: str
    count: int
    created: list[str] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{PREFIX}{self.tag}-hub"

    @property
    def names(self) -> list[str]:
        return [f"{PREFIX}{self.tag}-{i:02d}" for i in range(self.count)]

    def build(self) -> None:
        """A hub with bridge ``br0`` and, per namespace, a veth ``eth0`` on it
        (198.18.100.10+i/24, default route via the hub): a container's shape."""
        netns.create_owned(self.hub)
        self.created.append(self.hub)
        ip("-n", self.hub, "link", "set", "lo", "up")
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "addr", "add", f"{HUB_ADDR}/24", "dev", "br0")
        ip("-n", self.hub, "link", "set", "br0", "up")
        for i, name in enumerate(self.names):
            netns.create_owned(name)
            self.created.append(name)
            ip("-n", name, "link", "set", "lo", "up")
            ip(
                "-n",
                name,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                f"p{i}",
                "netns",
                self.hub,
            )
            ip("-n", name, "addr", "add", f"198.18.100.{10 + i}/24", "dev", "eth0")
            ip("-n", name, "link", "set", "eth0", "up")
            ip("-n", name, "route", "add", "default", "via", HUB_ADDR)
            ip("-n", self.hub, "link", "set", f"p{i}", "master", "br0", "up")

    def remove(self) -> None:
        if os.getpid() != MAIN_PID:
            return  # a forked helper unwinding: the namespaces are not its own
        for name in reversed(self.created):
            netns.remove_owned(name)
        self.created.clear()


# -- traffic (a separate process, so its CPU is not counted) ------------------------


def traffic_main(names: list[str], seconds: float) -> None:
    """In each namespace given: 5 datagrams a second to a closed port on its
    own loopback and one to the hub (NoPorts rises in both), and a ping."""
    socks = []
    for name in names:
        ns = Namespace(netns.netns_path(name), name, name)
        socks.append(ns.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
    pings = [
        subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                name,
                "ping",
                "-q",
                "-i",
                "0.2",
                "-w",
                str(int(seconds) + 1),
                HUB_ADDR,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in names
    ]
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent ends us
    deadline = time.monotonic() + seconds
    tick = 0
    while time.monotonic() < deadline and not stop:  # bounded by time
        for s in socks:
            s.sendto(b"x", ("127.0.0.1", 9))
            if tick % 5 == 0:
                s.sendto(b"x", (HUB_ADDR, 9))
        tick += 1
        time.sleep(0.2)
    for p in pings:
        if p.poll() is None:
            p.terminate()  # our own children, by PID
        p.wait(timeout=10)


@contextmanager
def traffic(names: list[str], seconds: float) -> Iterator[None]:
    if not names:
        yield
        return
    argv = [sys.executable, __file__, "--traffic-child", str(seconds), *names]
    proc = subprocess.Popen(argv)
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()  # our own child, by PID
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- measuring --------------------------------------------------------------------


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class TimedSampler(CounterSampler):
    """The real sampler, also timing each pass on the wall clock."""

    def __init__(self, emit: Callable[[list[NetEvent]], None], interval: float) -> None:
        super().__init__(emit, interval)
        self.walls: list[float] = []

    def sample_once(self) -> list[NetEvent]:
        t0 = time.perf_counter()
        events = super().sample_once()
        self.walls.append(time.perf_counter() - t0)
        return events


def measure_netsleuth(bench: Bench, seconds: float) -> dict[str, Any]:
    events: list[NetEvent] = []
    sampler = TimedSampler(events.extend, 1.0)
    sampler.watch("host", str(netns.netns_path(bench.hub)))
    for name in bench.names:
        sampler.watch(f"netns:{name}", str(netns.netns_path(name)))
    # The first pass opens every namespace's files (a setns each): once per
    # namespace, so it is reported apart from the steady state.
    cpu0 = time.thread_time()
    sampler.sample_once()
    opening = time.thread_time() - cpu0
    sampler.busy_s, sampler.samples, sampler.walls = 0.0, 0, []
    wall0, proc0 = time.monotonic(), time.process_time()
    sampler.start()
    try:
        time.sleep(seconds)
    finally:
        sampler.stop()
    wall = time.monotonic() - wall0
    proc = time.process_time() - proc0
    readings = sampler.samples * (bench.count + 1)
    return {
        "namespaces_read": bench.count + 1,
        "seconds": wall,
        "samples": sampler.samples,
        "events": len(events),
        "thread_cpu_s": sampler.busy_s,
        "thread_cpu_percent": 100 * sampler.busy_s / wall,
        "process_cpu_s": proc,
        "process_cpu_percent": 100 * proc / wall,
        "us_per_namespace_sample": 1e6 * sampler.busy_s / max(1, readings),
        "sample_wall_ms_median": 1000 * statistics.median(sampler.walls) if sampler.walls else 0,
        "sample_wall_ms_max": 1000 * max(sampler.walls) if sampler.walls else 0,
        "opening_ms": 1000 * opening,
    }


def read_by_subprocess(name: str) -> dict[str, Any]:
    """What a script gets with iproute2 and cat: every link's stats, every
    snmp/netstat counter, the conntrack table's stats, count and maximum."""
    links = json.loads(
        subprocess.run(
            ["ip", "-n", name, "-s", "-s", "-j", "link", "show"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    nstat = json.loads(
        subprocess.run(
            ["ip", "netns", "exec", name, "nstat", "-asz", "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    ct = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            name,
            "cat",
            "/proc/net/stat/nf_conntrack",
            "/proc/sys/net/netfilter/nf_conntrack_count",
            "/proc/sys/net/netfilter/nf_conntrack_max",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {"links": links, "nstat": nstat["kernel"], "ct": ct.split("\n")}


CT_FILES = (
    "/proc/net/stat/nf_conntrack",
    "/proc/sys/net/netfilter/nf_conntrack_count",
    "/proc/sys/net/netfilter/nf_conntrack_max",
)


def _read_proc() -> list[str]:
    out = []
    for path in ("/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat", *CT_FILES):
        try:
            out.append(Path(path).read_text())
        except OSError:
            out.append("")
    return out


def read_by_pyroute2(name: str) -> dict[str, Any]:
    from pyroute2 import IPRoute

    with IPRoute(netns=name) as ipr:
        links = [(m.get("ifname"), m.get("stats64")) for m in ipr.get_links()]
    texts = netns.run_in(netns.netns_path(name), _read_proc)
    return {"links": links, "proc": texts}


def measure_peer(bench: Bench, seconds: float, read: Callable[[str], object]) -> dict[str, Any]:
    """Rounds over every namespace, one a second (back to back when a round
    takes longer), for ``seconds``; CPU of this process and its children."""
    names = [bench.hub, *bench.names]
    wall0, proc0, kids0 = time.monotonic(), time.process_time(), children_cpu()
    rounds, walls = 0, []
    next_at = wall0
    while time.monotonic() - wall0 < seconds:  # bounded by time
        t0 = time.perf_counter()
        for name in names:
            read(name)
        walls.append(time.perf_counter() - t0)
        rounds += 1
        next_at += 1.0
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()
    wall = time.monotonic() - wall0
    own, kids = time.process_time() - proc0, children_cpu() - kids0
    cpu = own + kids
    return {
        "seconds": wall,
        "samples": rounds,
        "cpu_s": cpu,
        "own_cpu_s": own,
        "children_cpu_s": kids,
        "cpu_percent": 100 * cpu / wall,
        "us_per_namespace_sample": 1e6 * cpu / max(1, rounds * len(names)),
        "sample_wall_ms_median": 1000 * statistics.median(walls),
    }


def agreement(name: str) -> dict[str, Any]:
    """netsleuth's reader against nstat and ip on one quiet namespace."""
    path = netns.netns_path(name)
    with CounterReader(Namespace(path, name, name)) as reader:
        mine = reader.read()
    theirs = read_by_subprocess(name)
    nstat = theirs["nstat"]
    checks = {
        "snmp.Udp.NoPorts": ("UdpNoPorts", nstat.get("UdpNoPorts")),
        "snmp.Ip.OutDiscards": ("IpOutDiscards", nstat.get("IpOutDiscards")),
        "netstat.TcpExt.TCPTimeouts": ("TcpExtTCPTimeouts", nstat.get("TcpExtTCPTimeouts")),
    }
    for link in theirs["links"]:
        rx = link.get("stats64", {}).get("rx", {})
        checks[f"link.{link['ifname']}.rx_dropped"] = ("ip rx dropped", rx.get("dropped"))
    diffs = {k: (mine.get(k), v) for k, (_, v) in checks.items() if mine.get(k) != v}
    return {"namespace": name, "compared": len(checks), "differ": diffs}


# -- main -------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as Ctrl-C, so the namespaces are removed. pyroute2 forks
    helpers (without exec) that inherit this handler: they just end."""
    if os.getpid() != MAIN_PID:
        os._exit(128 + signum)
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise SystemExit("bench_counters needs root (it builds network namespaces)")
    netns.clean_stale(PREFIX)  # left by an earlier run that was killed
    bench = Bench(secrets.token_hex(3), args.namespaces)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background
    try:
        t0 = time.perf_counter()
        bench.build()
        built = time.perf_counter() - t0
        busy = [] if args.no_traffic else bench.names[::2]
        total = args.seconds + 2 * args.peer_seconds + 10
        with traffic(busy, total):
            time.sleep(1.0)  # traffic running
            mine = measure_netsleuth(bench, args.seconds)
            peer_ip = measure_peer(bench, args.peer_seconds, read_by_subprocess)
            peer_pr = measure_peer(bench, args.peer_seconds, read_by_pyroute2)
        agree = agreement(bench.names[1] if bench.count > 1 else bench.names[0])
    finally:
        bench.remove()
    us = mine["us_per_namespace_sample"]
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "namespaces": args.namespaces,
        "with_traffic": len(busy),
        "build_s": built,
        "netsleuth": mine,
        "peer_ip_nstat": peer_ip,
        "peer_pyroute2_setns": peer_pr,
        "ratio_ip_nstat": peer_ip["us_per_namespace_sample"] / us if us else None,
        "ratio_pyroute2": peer_pr["us_per_namespace_sample"] / us if us else None,
        "agreement": agree,
        "target_percent": TARGET,
        "ok": mine["thread_cpu_percent"] < TARGET and mine["process_cpu_percent"] < TARGET,
    }


def show(r: dict[str, Any]) -> None:
    m, a, b = r["netsleuth"], r["peer_ip_nstat"], r["peer_pyroute2_setns"]
    n = m["namespaces_read"]
    print(f"python {r['python']}, kernel {r['kernel']}, {r['cpus']} CPUs")
    print(
        f"{r['namespaces']} namespaces + the hub as host ({n} read per sample), "
        f"{r['with_traffic']} with traffic; built in {r['build_s']:.1f} s"
    )
    print(
        f"netsleuth CounterSampler, 1 s, {m['seconds']:.1f} s: {m['samples']} samples, "
        f"{m['events']} counters events"
    )
    print(
        f"  sampling thread CPU {m['thread_cpu_s'] * 1000:.1f} ms = "
        f"{m['thread_cpu_percent']:.3f} % of one core (limit {r['target_percent']} %)"
    )
    print(
        f"  process CPU (cross-check) {m['process_cpu_s'] * 1000:.1f} ms = "
        f"{m['process_cpu_percent']:.3f} % of one core"
    )
    print(
        f"  {m['us_per_namespace_sample']:.0f} µs CPU per namespace per sample; a pass over "
        f"{n} namespaces takes {m['sample_wall_ms_median']:.2f} ms (median, max "
        f"{m['sample_wall_ms_max']:.2f} ms); opening them once: {m['opening_ms']:.1f} ms CPU"
    )
    for label, p, ratio in (
        ("peer (a) ip -s -s -j link + nstat + cat via ip netns exec", a, r["ratio_ip_nstat"]),
        ("peer (b) pyroute2 IPRoute(netns=) + setns and read /proc", b, r["ratio_pyroute2"]),
    ):
        print(
            f"{label}, {p['seconds']:.1f} s: {p['samples']} samples, CPU {p['cpu_s']:.2f} s "
            f"(own {p['own_cpu_s']:.2f}, children {p['children_cpu_s']:.2f}) = "
            f"{p['cpu_percent']:.1f} % of one core; {p['us_per_namespace_sample']:.0f} µs per "
            f"namespace per sample; a pass takes {p['sample_wall_ms_median']:.0f} ms"
        )
        if ratio is not None:
            print(f"  ratio peer / netsleuth per namespace-sample: {ratio:.0f}x")
    g = r["agreement"]
    verdict = "agree" if not g["differ"] else f"DIFFER: {g['differ']}"
    print(f"reader vs nstat/ip on {g['namespace']}: {g['compared']} counters compared, {verdict}")
    print("within the limit" if r["ok"] else "OVER THE LIMIT")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--traffic-child":
        traffic_main(sys.argv[3:], float(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="netsleuth sampling time")
    parser.add_argument("--peer-seconds", type=float, default=10.0, help="each peer's time")
    parser.add_argument("--no-traffic", action="store_true", help="no traffic at all")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not 1 <= args.namespaces <= 200:
        parser.error("--namespaces: 1 to 200")
    try:
        result = run(args)
    except KeyboardInterrupt:
        print("interrupted; namespaces removed", file=sys.stderr)
        sys.exit(130)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)


if __name__ == "__main__":
    main()
