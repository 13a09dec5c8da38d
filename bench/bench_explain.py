"""Benchmark: `explain` (read, match, classify) against tshark and tcpdump on
the same capture, generated here.

The capture imitates `netsleuth capture --lab` during churn: three
interfaces (bridge port, bridge, uplink), each DNS query seen 6 times when
answered (query and answer on each hop, NATed on the uplink), 3 % of the
queries never leaving the bridge (sent to a departed MAC), 1 % NATed and
unanswered, ARP traffic between the client and its gateway, whose MAC
changes now and then. Every tool runs as its own process, one after the
other; wall time and peak RSS come from wait4().

    .venv/bin/python bench/bench_explain.py                # 1,000,000 frames
    .venv/bin/python bench/bench_explain.py --frames 200000 --skip-tshark
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from netsleuth.packets.writer import PcapngWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testing"))  # helpers not shipped
from netsleuth_testing.frames import arp_frame, dns_frame

CLIENT_MAC = "02:aa:00:00:00:10"
UPLINK_MAC = "02:cc:00:00:00:01"
UPSTREAM_MAC = "02:dd:00:00:00:02"
CLIENT, GATEWAY, NAT, SERVER = "198.18.0.10", "198.18.0.1", "198.18.255.1", "198.18.255.2"
# what explain decodes from every frame (DnsPacket and ArpPacket fields)
TSHARK_FIELDS = [
    "frame.time_epoch",
    "frame.interface_id",
    "eth.src",
    "eth.dst",
    "ip.src",
    "ip.dst",
    "udp.srcport",
    "udp.dstport",
    "dns.id",
    "dns.flags",
    "dns.qry.name",
    "dns.qry.type",
    "arp.opcode",
    "arp.src.hw_mac",
    "arp.src.proto_ipv4",
    "arp.dst.hw_mac",
    "arp.dst.proto_ipv4",
]


def bridge_mac(epoch: int) -> str:
    return f"02:00:00:00:{(epoch >> 8) & 0xFF:02x}:{epoch & 0xFF:02x}"


def generate(path: Path, frames: int) -> dict[str, int]:
    """Write the capture; returns how many queries of each kind it holds."""
    kinds = {"answered": 0, "never-left-bridge": 0, "nat-unanswered": 0, "arp": 0}
    t = 1_800_000_000_000_000_000
    written = 0
    with path.open("wb") as fh:
        w = PcapngWriter(fh)
        port = w.add_interface("vc0", "bench-host", "client")
        br = w.add_interface("labbr0", "bench-host", "bridge")
        up = w.add_interface("uplink0", "bench-host", "uplink")
        n = 0
        epoch = 1
        while written < frames:
            n += 1
            if n % 500 == 1:  # the bridge (re)announces its MAC: a new one every 1000 queries
                epoch = 1 + n // 1000
                w.write(port, t, arp_frame(1, bridge_mac(epoch), GATEWAY, "00" * 6, CLIENT))
                w.write(
                    port, t + 10_000, arp_frame(2, CLIENT_MAC, CLIENT, bridge_mac(epoch), GATEWAY)
                )
                written += 2
                kinds["arp"] += 2
                t += 20_000
            dns_id = n & 0xFFFF
            sport = 10_000 + n % 50_000
            gw = bridge_mac(epoch)
            q = {"dns_id": dns_id, "qname": f"host{n % 997}.lab.test"}
            r = {**q, "response": True, "answer": "198.18.255.80"}
            fate = n % 100
            w.write(port, t, dns_frame(CLIENT_MAC, gw, CLIENT, SERVER, sport=sport, dport=53, **q))
            written += 1
            if fate < 3:  # to a departed gateway MAC: flooded, never routed
                kinds["never-left-bridge"] += 1
            else:
                w.write(
                    br,
                    t + 1_000,
                    dns_frame(CLIENT_MAC, gw, CLIENT, SERVER, sport=sport, dport=53, **q),
                )
                w.write(
                    up,
                    t + 20_000,
                    dns_frame(
                        UPLINK_MAC, UPSTREAM_MAC, NAT, SERVER, sport=sport, dport=53, ttl=63, **q
                    ),
                )
                written += 2
                if fate < 4:
                    kinds["nat-unanswered"] += 1
                else:
                    kinds["answered"] += 1
                    w.write(
                        up,
                        t + 120_000,
                        dns_frame(
                            UPSTREAM_MAC, UPLINK_MAC, SERVER, NAT, sport=53, dport=sport, **r
                        ),
                    )
                    w.write(
                        br,
                        t + 140_000,
                        dns_frame(gw, CLIENT_MAC, SERVER, CLIENT, sport=53, dport=sport, **r),
                    )
                    w.write(
                        port,
                        t + 141_000,
                        dns_frame(gw, CLIENT_MAC, SERVER, CLIENT, sport=53, dport=sport, **r),
                    )
                    written += 3
            t += 200_000  # 5,000 queries/s
    return kinds


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds of the process
    rss_kib: int  # peak resident set
    out: str  # its stdout, when captured


def run_child(
    argv: list[str], stdout: int | None = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, env=env)
    out = proc.stdout.read().decode() if proc.stdout is not None else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed with status {status}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out)


def best_of(
    runs: int,
    argv: list[str],
    stdout: int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> Run:
    """The fastest of ``runs`` runs (the machine is shared: noise only slows)."""
    return min((run_child(argv, stdout, env) for _ in range(max(runs, 1))), key=lambda r: r.wall)


def plain_python_env(tmp: Path) -> dict[str, str]:
    """An environment importing netsleuth from a copy of its sources without the
    compiled modules (netsleuth.packets.accel): the plain-Python figure."""
    import netsleuth

    src = Path(netsleuth.__file__).resolve().parent
    shutil.copytree(src, tmp / "netsleuth", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    return {**os.environ, "PYTHONPATH": str(tmp)}


EXPLAIN_SNIPPET = """
import sys, time
from netsleuth.packets.accel import compiled_modules
from netsleuth.packets.explain import explain
t = time.perf_counter()
e = explain([sys.argv[1]], keep="failed")
dt = time.perf_counter() - t
print(e.stats.frames, dt, e.journeys_total, *(e.counts[k] for k in sorted(e.counts)),
      e.stale_gateway, ",".join(compiled_modules()) or "none")
"""

WALK_SNIPPET = """
import mmap, struct, sys, time
t = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    hdr = struct.Struct("<II").unpack_from
    off, n, size = 0, 0, len(mm)
    while off + 8 <= size:
        btype, blen = hdr(mm, off)
        n += btype == 6
        off += blen
print(n, time.perf_counter() - t)
"""

DPKT_SNIPPET = """
import sys, time
import dpkt
t = time.perf_counter()
n = 0
with open(sys.argv[1], "rb") as f:
    for ts, buf in dpkt.pcapng.Reader(f):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP):
            d = dpkt.dns.DNS(ip.data.data)
            n += bool(d.qd)
print(n, time.perf_counter() - t)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--skip-tshark", action="store_true", help="tshark takes ~40 s per 1M")
    parser.add_argument("--keep", metavar="PATH", help="write the capture here and keep it")
    parser.add_argument("--runs", type=int, default=3, help="best of N for the fast tools")
    parser.add_argument("--tshark-runs", type=int, default=1, help="best of N for tshark")
    args = parser.parse_args()
    py = sys.executable
    print(
        f"interpreter: {py} (Python {sys.version.split()[0]}, "
        f"{os.path.realpath(py)}); best of {args.runs} runs, tshark best of "
        f"{args.tshark_runs}; load average now {os.getloadavg()[0]:.1f}"
    )
    tmp = tempfile.TemporaryDirectory(prefix="nsbench-")
    path = Path(args.keep) if args.keep else Path(tmp.name) / "bench.pcapng"
    small = Path(tmp.name) / "small.pcapng"
    t = time.perf_counter()
    kinds = generate(path, args.frames)
    generate(small, max(args.frames // 10, 1000))
    size = path.stat().st_size
    print(
        f"generated {args.frames:,} frames ({size / 2**20:.0f} MiB) in "
        f"{time.perf_counter() - t:.1f} s: {kinds}"
    )

    rows: list[tuple[str, Run]] = []
    ex = best_of(args.runs, [py, "-c", EXPLAIN_SNIPPET, str(path)], subprocess.PIPE)
    frames, inner, total, *counts_stale, compiled = ex.out.split()
    print(
        f"explain result: {total} journeys, verdict counts (sorted by name) "
        f"{counts_stale[:-1]}, stale-gateway {counts_stale[-1]}; compiled modules: {compiled}"
    )
    rows.append(("explain: whole process (interpreter start incl.)", ex))
    plain = best_of(
        args.runs,
        [py, "-c", EXPLAIN_SNIPPET, str(path)],
        subprocess.PIPE,
        plain_python_env(Path(tmp.name)),
    )
    assert plain.out.split()[2:-1] == ex.out.split()[2:-1], "plain Python disagrees"
    rows.append(("explain, plain Python (no compiled modules)", plain))
    small_run = run_child([py, "-c", EXPLAIN_SNIPPET, str(small)], subprocess.PIPE)
    walk = best_of(args.runs, [py, "-c", WALK_SNIPPET, str(path)], subprocess.PIPE)
    rows.append(("bare mmap+struct walk of block headers", walk))
    if shutil.which("tcpdump"):
        rows.append(
            (
                "tcpdump -nn -r (text to /dev/null)",
                best_of(args.runs, ["tcpdump", "-nn", "-r", str(path)]),
            )
        )
    else:
        print("tcpdump not installed: row left out")
    if shutil.which("tshark") and not args.skip_tshark:
        argv = ["tshark", "-n", "-r", str(path), "-T", "fields"]
        for f in TSHARK_FIELDS:
            argv += ["-e", f]
        rows.append(
            (f"tshark -T fields ({len(TSHARK_FIELDS)} fields)", best_of(args.tshark_runs, argv))
        )
    else:
        print("tshark skipped or not installed: row left out")
    try:
        import dpkt  # noqa: F401

        rows.append(
            (
                "dpkt pcapng reader + DNS decode",
                run_child([py, "-c", DPKT_SNIPPET, str(path)], subprocess.PIPE),
            )
        )
    except ImportError:
        print("dpkt not installed: row left out (the reader is struct over mmap instead)")

    n = int(frames)
    print(
        f"\nexplain timed inside the process (read+match+classify): {float(inner):.2f} s, "
        f"{n / float(inner):,.0f} frames/s"
    )
    print(
        f"\n{'':<50} {'wall s':>7} {'frames/s':>10} {'ratio':>7} {'CPU s':>7} "
        f"{'frames/CPU-s':>12} {'ratio':>7} {'peak RSS':>9}"
    )
    for name, r in rows:
        print(
            f"{name:<50} {r.wall:7.2f} {n / r.wall:10,.0f} {r.wall / ex.wall:6.2f}x "
            f"{r.cpu:7.2f} {n / r.cpu:12,.0f} {r.cpu / ex.cpu:6.2f}x {r.rss_kib / 1024:5.0f} MiB"
        )
    print(
        "ratio: that tool's time / explain's (above 1: explain is that many times faster); "
        "CPU time is the fairer figure on a shared machine"
    )
    print(
        f"\nmemory: explain peak RSS {small_run.rss_kib / 1024:.0f} MiB on {n // 10:,} frames, "
        f"{ex.rss_kib / 1024:.0f} MiB on {n:,} frames (file {size / 2**20:.0f} MiB)"
    )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
