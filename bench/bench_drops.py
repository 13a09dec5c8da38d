"""Which mechanism follows kernel drops best, measured (run as root). Issue 14.

Builds two owned namespaces ``nsl-bd<id>-a`` / ``-b`` joined by a veth pair;
``b`` drops UDP to port 7777 with an nftables rule (NETFILTER_DROP at
``nft_do_chain``) and echoes UDP on port 5353. Then, for each mechanism —
none (the baseline), netsleuth's bpftrace source, netsleuth's ftrace
source, and the peers a user would script: a plain ftrace reader (a private
instance with the same filter, ``cat trace_pipe``) and ``perf trace -e
skb:kfree_skb`` (same filter) — it measures:

1. drops/s sustained with nothing lost from the counts: a sender in ``a``
   sends paced datagrams to port 7777 at each of ``--rates`` for
   ``--seconds``; the drops the mechanism reports (netsleuth: by namespace
   and key; the peers, which cannot tell namespaces, by reason and function
   less the background counted just before) against those sent;
2. CPU per 1,000 drops: the sender's CPU (the drop, and any BPF program,
   run in its softirq) above the baseline's at the same rate, plus the
   tracer's own process and reader CPU;
3. the cost for the watched traffic: UDP echo round trips a → b (p50/p99)
   under a background drop load, with and without the mechanism.

Every mechanism is removed again (bpftrace/perf/cat by PID, instances by
name); the global tracing state is compared before and after.

    .venv/bin/python bench/bench_drops.py [--rates 1000,5000,20000,50000]
        [--seconds 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from netsleuth import netns
from netsleuth.drops import Drop, DropSource, tracefs
from netsleuth.drops.reasons import read_format
from netsleuth.drops.source import availability, process_cpu_s

PREFIX = "nsl-bd"
A_IP, B_IP = "198.18.101.1", "198.18.101.2"
DROP_PORT, ECHO_PORT = 7777, 5353

SENDER = r"""
import os, resource, socket, sys, time
rate, seconds, port = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[4], 0))
dst, data = (sys.argv[5], port), b"netsleuth-bench"
sent, start = 0, time.monotonic()
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    due = int(now * rate)
    while sent < due:
        s.sendto(data, dst)
        sent += 1
    time.sleep(0.001)
u = resource.getrusage(resource.RUSAGE_SELF)
print(sent, u.ru_utime + u.ru_stime)
"""

ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""


@dataclass
class Lab:
    a: str
    b: str
    b_inode: int
    echo: subprocess.Popen[str] | None = None


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    tag = secrets.token_hex(2)
    a, b = f"{PREFIX}{tag}-a", f"{PREFIX}{tag}-b"
    for name in (a, b):
        netns.create_owned(name)
    echo = None
    try:

        def ip(*args: str) -> None:
            subprocess.run(["ip", *args], check=True, capture_output=True)

        ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, addr in ((a, "va", A_IP), (b, "vb", B_IP)):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        rules = (
            "table inet nslbench {\n  chain input {\n    type filter hook input priority 0;\n"
            f"    udp dport {DROP_PORT} drop\n  }}\n}}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", b, "nft", "-f", "-"], input=rules.encode(), check=True
        )
        echo = subprocess.Popen(
            ["ip", "netns", "exec", b, sys.executable, "-c", ECHO, B_IP, str(ECHO_PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        yield Lab(a, b, os.stat(netns.netns_path(b)).st_ino, echo)
    finally:
        if echo is not None:
            echo.kill()  # ours, by PID
            echo.wait()
        for name in (a, b):
            netns.remove_owned(name)


def send(lab: Lab, rate: float, seconds: float) -> tuple[int, float]:
    out = subprocess.run(
        [
            *("ip", "netns", "exec", lab.a, sys.executable, "-c", SENDER),
            *(str(rate), str(seconds), str(DROP_PORT), A_IP, B_IP),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    sent, cpu = out.stdout.split()
    return int(sent), float(cpu)


def rtts(lab: Lab, n: int = 400) -> tuple[float, float]:
    """p50, p99 of UDP echo round trips a → b, in µs."""

    def run() -> list[float]:
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.connect((B_IP, ECHO_PORT))
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            s.send(b"ping")
            try:
                s.recv(64)
            except TimeoutError:
                continue
            out.append((time.perf_counter_ns() - t0) / 1000)
            time.sleep(0.002)
        s.close()
        return out

    samples = sorted(netns.Namespace.named(lab.a).run(run))
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def rtts_under_load(lab: Lab, drops_per_s: float = 2000) -> tuple[float, float]:
    """:func:`rtts` while the sender drops ``drops_per_s`` in the background."""
    load = threading.Thread(target=send, args=(lab, drops_per_s, 5.0), daemon=True)
    load.start()
    time.sleep(0.3)
    try:
        return rtts(lab, 800)
    finally:
        load.join()


# -- the mechanisms ------------------------------------------------------------------


class Mechanism:
    name = ""

    def start(self, lab: Lab) -> None: ...
    def stop(self) -> None: ...
    def count(self) -> int:
        """Drops of the bench's key seen so far."""
        return 0

    def cpu_s(self) -> float:
        """CPU of the tracer's own process(es) and reader so far."""
        return 0.0


class Baseline(Mechanism):
    name = "none"


class Netsleuth(Mechanism):
    def __init__(self, prefer: str) -> None:
        self.name = f"netsleuth-{prefer}"
        self.prefer = prefer
        self.total = 0
        self.lock = threading.Lock()
        self.src: DropSource | None = None
        self.inode = 0

    def start(self, lab: Lab) -> None:
        self.inode = lab.b_inode if self.prefer == "bpftrace" else 0

        def sink(drops: list[Drop]) -> None:
            n = sum(
                d.count
                for d in drops
                if d.reason == "NETFILTER_DROP"
                and d.location == "nft_do_chain"
                and (d.netns == self.inode)
            )
            with self.lock:
                self.total += n

        self.src = DropSource(sink, prefer=self.prefer)
        self.src.start()

    def stop(self) -> None:
        if self.src is not None:
            self.src.stop()

    def count(self) -> int:
        with self.lock:
            return self.total

    def cpu_s(self) -> float:
        src = self.src
        if src is None:
            return 0.0
        tracer = 0.0
        proc = src._proc
        if proc is not None:
            tracer = process_cpu_s(proc.pid) or src.tracer_cpu_s
        return tracer + src.reader_cpu_s  # the reader thread's CPU, updated every tick


class LineCounter(Mechanism):
    """A peer process whose stdout lines matching ``needle`` are counted."""

    needle = b""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines = 0
        self.thread: threading.Thread | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, lab: Lab) -> None:
        # perf trace writes its lines to stderr
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(1.5)  # perf needs a moment to attach

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        needle = self.needle
        while chunk := self.proc.stdout.read1(1 << 16):  # type: ignore[attr-defined]
            self.lines += chunk.count(needle)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # ours, by PID
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def count(self) -> int:
        return self.lines

    def cpu_s(self) -> float:
        return (process_cpu_s(self.proc.pid) or 0.0) if self.proc is not None else 0.0


class PlainFtrace(LineCounter):
    name = "peer-ftrace-cat"
    needle = b"reason: NETFILTER_DROP"

    def __init__(self, where: Any, expr: str) -> None:
        super().__init__()
        self.inst = tracefs.Instance(where)
        self.expr = expr

    def argv(self) -> list[str]:
        return ["cat", str(self.inst.path / "trace_pipe")]

    def start(self, lab: Lab) -> None:
        self.inst.create(self.expr)
        super().start(lab)

    def stop(self) -> None:
        super().stop()
        self.inst.remove()


class PerfTrace(LineCounter):
    name = "peer-perf-trace"

    def __init__(self, reason_code: int, noise: str) -> None:
        super().__init__()
        self.needle = f"reason: {reason_code})".encode()
        self.noise = noise

    def argv(self) -> list[str]:
        argv = ["perf", "trace", "--no-syscalls", "-a", "-e", "skb:kfree_skb"]
        return [*argv, "--filter", self.noise] if self.noise else argv


# -- the run -----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    start_s: float = 0.0
    steps: list[dict[str, float]] = field(default_factory=list)
    rtt_p50_us: float = 0.0
    rtt_p99_us: float = 0.0
    rtt_off_p50_us: float = 0.0  # the same measurement just before it started
    rtt_off_p99_us: float = 0.0
    sustained: float = 0.0
    cpu_ms_per_1000: float | None = None
    error: str = ""


def measure(mech: Mechanism, lab: Lab, rates: list[float], seconds: float) -> Result:
    res = Result(mech.name)
    res.rtt_off_p50_us, res.rtt_off_p99_us = rtts_under_load(lab)
    t0 = time.monotonic()
    try:
        mech.start(lab)
    except Exception as exc:
        res.error = str(exc)[:200]
        return res
    res.start_s = time.monotonic() - t0
    try:
        for rate in rates:
            before = mech.count()
            time.sleep(1.0)
            background = mech.count() - before  # drops of the same reason elsewhere, per s
            c0, cpu0 = mech.count(), mech.cpu_s()
            sent, sender_cpu = send(lab, rate, seconds)
            time.sleep(2.5)  # the last tick and the reader catch up
            seen = mech.count() - c0 - background * (seconds + 2.5)
            res.steps.append(
                {
                    "rate": rate,
                    "sent": sent,
                    "seen": max(0, round(seen)),
                    "lost": max(0, sent - round(seen)),
                    "sender_cpu_s": sender_cpu,
                    "tracer_cpu_s": mech.cpu_s() - cpu0,
                }
            )
        res.rtt_p50_us, res.rtt_p99_us = rtts_under_load(lab)
    finally:
        mech.stop()
    # the same after it stopped: the "off" figure is the mean of before and after
    p50, p99 = rtts_under_load(lab)
    res.rtt_off_p50_us = (res.rtt_off_p50_us + p50) / 2
    res.rtt_off_p99_us = (res.rtt_off_p99_us + p99) / 2
    if isinstance(mech, Baseline):
        for step in res.steps:
            step["seen"] = step["lost"] = -1  # nothing counts: no figure
        return res
    ok = [s["rate"] for s in res.steps if s["lost"] == 0]
    res.sustained = max(ok) if ok else 0.0
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rates", default="1000,5000,20000,50000")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    avail = availability()
    where = tracefs.find_tracefs()
    if where is None or avail.format is None:
        print(f"bench_drops: {avail.summary}", file=sys.stderr)
        return 1
    fmt = read_format(where)
    noise = sorted(fmt.noise_codes())
    expr = " && ".join(f"reason != {c}" for c in noise)
    before = tracefs.global_state(where)
    mechs: list[Mechanism] = [Baseline()]
    if avail.mechanism == "bpftrace":
        mechs.append(Netsleuth("bpftrace"))
    mechs += [Netsleuth("ftrace"), PlainFtrace(where, expr)]
    if shutil.which("perf"):
        (code,) = fmt.codes(["NETFILTER_DROP"])
        mechs.append(PerfTrace(code, expr))
    results = []
    with lab() as lb:
        for mech in mechs:
            results.append(measure(mech, lb, rates, args.seconds))
            print(f"  {mech.name}: done", file=sys.stderr)
    assert tracefs.global_state(where) == before, "the global tracing state changed"
    base = {s["rate"]: s["sender_cpu_s"] for s in results[0].steps}
    for res in results[1:]:
        costs = [
            (s["sender_cpu_s"] - base.get(s["rate"], 0.0) + s["tracer_cpu_s"]) / s["sent"] * 1e6
            for s in res.steps
            if s["sent"] and s["rate"] >= 5000
        ]
        res.cpu_ms_per_1000 = round(statistics.median(costs), 3) if costs else None
    report = {
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count()},
        "rates": rates,
        "seconds": args.seconds,
        "results": [r.__dict__ for r in results],
    }
    ours = next((r for r in results if r.name == "netsleuth-bpftrace"), results[1])
    report["ratios"] = {
        r.name: {
            "sustained": _ratio(ours.sustained, r.sustained),
            "cpu_per_1000": _ratio(r.cpu_ms_per_1000, ours.cpu_ms_per_1000),
            "rtt_p50_on_off": _ratio(r.rtt_p50_us, r.rtt_off_p50_us),
        }
        for r in results[1:]
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report, results)
    return 0


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _print(report: dict[str, Any], results: list[Result]) -> None:
    print(f"kernel {report['machine']['kernel']}, {report['machine']['cpus']} CPUs")
    print(
        f"{'mechanism':20} {'start s':>8} {'sustained/s':>12} {'CPU ms/1000':>12}"
        f" {'rtt p50 on/off µs':>18} {'rtt p99 on/off µs':>18}  lost at each rate"
    )
    for r in results:
        lost = " ".join(f"{int(s['rate'])}:{int(s['lost'])}" for s in r.steps if s["lost"] >= 0)
        print(
            f"{r.name:20} {r.start_s:8.2f} {r.sustained:12.0f} {r.cpu_ms_per_1000 or 0:12.3f}"
            f" {r.rtt_p50_us:8.0f}/{r.rtt_off_p50_us:<9.0f}"
            f" {r.rtt_p99_us:8.0f}/{r.rtt_off_p99_us:<9.0f}"
            f"  {lost} {r.error}"
        )
    print("ratios (peer / netsleuth-bpftrace for CPU and rtt; netsleuth / peer for sustained):")
    for name, ratios in report["ratios"].items():
        print(f"  {name:20} {ratios}")


if __name__ == "__main__":
    sys.exit(main())
