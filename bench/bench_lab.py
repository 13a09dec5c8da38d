"""Lab timings (run as root): time from `lab run` start to the first stored
probe, and teardown time; the peer is the same topology built and removed by
a shell script of `ip`/`nft` commands, measured in the same run.

    .venv/bin/python bench/bench_lab.py [--runs N]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netsleuth.lab import LabConfig, build_lab
from netsleuth.watch import LiveStats, WatchConfig, WatchEngine

PEER_BUILD = """
set -e
P=nsl-bench{i}
ip netns add $P-host; ip netns add $P-up; ip netns add $P-c0
ip -n $P-host link add labbr0 type bridge
ip -n $P-host addr add 198.18.0.1/24 dev labbr0; ip -n $P-host link set labbr0 up
ip -n $P-host link add uplink0 type veth peer name eth0 netns $P-up
ip -n $P-host addr add 198.18.255.1/30 dev uplink0; ip -n $P-host link set uplink0 up
ip -n $P-host link add vc0 type veth peer name eth0 netns $P-c0
ip -n $P-host link set vc0 master labbr0 up
ip netns exec $P-host sysctl -qw net.ipv4.ip_forward=1
ip netns exec $P-host nft add table ip nat
ip netns exec $P-host nft 'add chain ip nat post {{ type nat hook postrouting priority 100; }}'
ip netns exec $P-host nft add rule ip nat post ip saddr 198.18.0.0/24 oifname uplink0 masquerade
ip -n $P-up addr add 198.18.255.2/30 dev eth0; ip -n $P-up link set eth0 up
ip -n $P-c0 addr add 198.18.0.10/24 dev eth0; ip -n $P-c0 link set eth0 up
ip -n $P-c0 route add default via 198.18.0.1
"""
PEER_TEARDOWN = "for n in host up c0; do ip netns del nsl-bench{i}-$n; done"


def sh(script: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True)
    return time.perf_counter() - t0


def one_lab(tmp: Path, i: int) -> tuple[float, float, float]:
    """(build s, start -> first stored probe s, teardown s)"""
    t0 = time.perf_counter()
    first: list[float] = []
    lab = build_lab(LabConfig())
    topo = lab.__enter__()
    built = time.perf_counter() - t0
    try:

        def tick(stats: LiveStats, elapsed: float) -> None:
            if not first and stats.attempts:
                first.append(time.perf_counter() - t0)

        WatchEngine(
            WatchConfig(
                targets=(f"netns:{topo.container_ns[0]}",),
                probes=(f"dns:{topo.dns_server}/{topo.dns_name}/A",),
                rate=20,
                duration=1.0,
                host_netns=topo.host_ns,
            ),
            tmp / f"{i}.sqlite",
        ).run(on_tick=tick, tick_interval=0.005)
    finally:
        t1 = time.perf_counter()
        lab.__exit__(None, None, None)
        teardown = time.perf_counter() - t1
    return built, first[0] if first else float("nan"), teardown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()} ({sys.executable}), kernel {platform.release()}")
    labs, peers = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            labs.append(one_lab(Path(tmp), i))
            peers.append((sh(PEER_BUILD.format(i=i)), sh(PEER_TEARDOWN.format(i=i))))
    build = statistics.median(b for b, _, _ in labs)
    first = statistics.median(f for _, f, _ in labs)
    down = statistics.median(d for _, _, d in labs)
    pbuild = statistics.median(b for b, _ in peers)
    pdown = statistics.median(d for _, d in peers)
    print(
        f"lab build (namespaces, bridge, veths, NAT, dnsmasq answering): {1000 * build:.0f} ms"
        f" (median of {args.runs})"
    )
    print(f"lab run start -> first probe result in the watch engine: {1000 * first:.0f} ms")
    print(f"lab teardown: {1000 * down:.0f} ms")
    print(
        f"peer: the same topology with ip/nft commands (no dnsmasq): build {1000 * pbuild:.0f}"
        f" ms, teardown {1000 * pdown:.0f} ms"
    )
    print(
        f"ratio lab build / ip-script build: {build / pbuild:.2f}; "
        f"teardown ratio: {down / pdown:.2f}"
    )


if __name__ == "__main__":
    main()
