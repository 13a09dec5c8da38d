"""How long `netsleuth doctor` takes on a big host: 50 bridges with 500 veth
ports in a throwaway namespace (goal: under 1 s).

Peers measured in the same run on the same namespace: `ip -d -j link show`
(what a human would run to read the same links) and reading every
`addr_assign_type` with one `cat` process (the part only sysfs has).

Run as root:  .venv/bin/python bench/bench_doctor.py [--bridges 50] [--ports 500] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyroute2 import IPRoute

from netsleuth.audit import audit, read_snapshot_in, run_doctor
from netsleuth.netns import create_owned, exec_argv, remove_owned, run_in


def build(path: Path, bridges: int, ports: int) -> None:
    def body() -> None:
        with IPRoute() as ipr:
            for b in range(bridges):
                ipr.link("add", ifname=f"bbr{b}", kind="bridge")
                idx = ipr.link_lookup(ifname=f"bbr{b}")[0]
                if b % 2:  # half of them pinned
                    ipr.link("set", index=idx, address=f"02:00:5e:00:{b // 256:02x}:{b % 256:02x}")
                ipr.link("set", index=idx, state="up")
            for p in range(ports):
                ipr.link("add", ifname=f"bv{p}", kind="veth", peer=f"bv{p}p")
                port = ipr.link_lookup(ifname=f"bv{p}")[0]
                master = ipr.link_lookup(ifname=f"bbr{p % bridges}")[0]
                ipr.link("set", index=port, master=master, state="up")

    run_in(path, body)


def timed(func: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        func()
        out.append(time.perf_counter() - t0)
    return out


def fmt(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.1f} ms  "
        f"min {min(samples) * 1000:7.1f} ms  max {max(samples) * 1000:7.1f} ms"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bridges", type=int, default=50)
    ap.add_argument("--ports", type=int, default=500)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (builds a network namespace)", file=sys.stderr)
        return 1
    name = f"nsbench-{secrets.token_hex(3)}"
    path = create_owned(name)
    try:
        t0 = time.perf_counter()
        build(path, args.bridges, args.ports)
        print(
            f"built {args.bridges} bridges, {args.ports} veth ports (+{args.ports} peers) in "
            f"{time.perf_counter() - t0:.1f} s; interpreter {sys.executable} "
            f"({sys.version.split()[0]}); {os.cpu_count()} CPUs"
        )
        findings = run_doctor(netns=name)
        unpinned = sum(1 for f in findings if f.rule == "bridge-mac-unpinned")
        print(f"doctor: {len(findings)} findings, {unpinned} unpinned bridges reported")
        assert unpinned == args.bridges - args.bridges // 2

        lib = timed(lambda: run_doctor(netns=name), args.runs)
        snap = timed(lambda: read_snapshot_in(path, name, name=name), args.runs)
        one = read_snapshot_in(path, name, name=name)
        rules = timed(lambda: audit([one]), args.runs)
        cli_argv = [sys.executable, "-m", "netsleuth", "doctor", "--netns", name, "--json"]
        cli = timed(
            lambda: subprocess.run(cli_argv, capture_output=True, check=True, timeout=60),
            args.runs,
        )
        ip_argv = ["ip", "-n", name, "-d", "-j", "link", "show"]
        ip = timed(
            lambda: subprocess.run(ip_argv, capture_output=True, check=True, timeout=60),
            args.runs,
        )
        cat_argv = exec_argv(name, ["sh", "-c", "cat /sys/class/net/*/addr_assign_type"])
        cat = timed(
            lambda: subprocess.run(cat_argv, capture_output=True, check=True, timeout=60),
            args.runs,
        )
        print(f"runs per figure: {args.runs}")
        print(f"  run_doctor(netns) library call   {fmt(lib)}")
        print(f"    read_snapshot_in (worker)      {fmt(snap)}")
        print(f"    audit (15 rules, pure)         {fmt(rules)}")
        print(f"  `netsleuth doctor --netns --json` {fmt(cli)}  (incl. interpreter start)")
        print(f"  peer `ip -n NS -d -j link show`  {fmt(ip)}")
        print(f"  peer `ip netns exec cat */addr_assign_type` {fmt(cat)}")
        med = statistics.median
        print(
            f"ratios: doctor/ip-link {med(lib) / med(ip):.1f}x, "
            f"doctor CLI/ip-link {med(cli) / med(ip):.1f}x, "
            f"doctor/cat-sysfs {med(lib) / med(cat):.1f}x; "
            f"goal < 1 s: library {'met' if med(lib) < 1 else 'MISSED'}, "
            f"CLI {'met' if med(cli) < 1 else 'MISSED'}"
        )
    finally:
        remove_owned(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
