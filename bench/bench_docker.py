"""Benchmark the Docker engine of the lab, each figure next to a peer measured
in the same run:

- dockerd start (launch → API answers) and stop (containers removed, daemon,
  containerd and files gone), vs. creating + removing one network namespace;
- ``docker run --rm IMAGE true`` round trip through the SDK and through the
  ``docker`` command (the reference's way), vs. one veth port joining and
  leaving the bridge (what one cycle of the veth churn does);
- full lab setup + teardown with the Docker engine and its probe container,
  vs. the veth lab alone;
- with ``--compare SECONDS``: the outage itself with a real engine — DNS
  probes at 20/s (1 s timeout, fixed schedule) from the lab's probing
  container while ``docker run --rm IMAGE sleep 2`` churns, bridge MAC
  unpinned vs. pinned (the peer), counting failures and bridge MAC changes.

Run as root: ``.venv/bin/python bench/bench_docker.py [--runs N] [--compare S]``.
"""

from __future__ import annotations

import argparse
import secrets
import select
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import dns.message
import dns.rdatatype
from pyroute2 import IPRoute

from netsleuth import netns
from netsleuth.docker import BUSYBOX_IMAGE, DockerDaemon, ensure_image
from netsleuth.lab import LabConfig, build_lab
from netsleuth.lab.docker_engine import DockerChurn, DockerEngine

PREFIX = "nslb-"


def timed(func: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        func()
        out.append(time.perf_counter() - began)
    return out


def show(label: str, samples: list[float]) -> float:
    med = statistics.median(samples)
    q = sorted(samples)
    p90 = q[min(len(q) - 1, round(0.9 * (len(q) - 1)))]
    print(
        f"  {label:<46} median {med * 1000:8.1f} ms   p90 {p90 * 1000:8.1f} ms   n={len(samples)}"
    )
    return med


def make_bridge_ns() -> str:
    name = f"{PREFIX}{secrets.token_hex(3)}-dk"
    netns.create_owned(name)
    with IPRoute(netns=name) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        ipr.link("add", ifname="br0", kind="bridge")
        idx = ipr.link_lookup(ifname="br0")[0]
        ipr.addr("add", index=idx, address="198.18.46.1", prefixlen=24)
        ipr.link("set", index=idx, state="up")
    return name


def bench_daemon(ns: str, runs: int) -> None:
    print("dockerd start / stop (own roots, --bridge=br0, in a namespace)")
    starts, stops = [], []
    drivers = set()
    for _ in range(runs):
        d = DockerDaemon(ns, "br0")
        began = time.perf_counter()
        d.start()
        starts.append(time.perf_counter() - began)
        drivers.add(d.storage_driver)
        began = time.perf_counter()
        d.stop()
        stops.append(time.perf_counter() - began)
    start = show("dockerd start → API answers", starts)
    show("dockerd stop + wipe", stops)

    def ns_cycle() -> None:
        name = f"{PREFIX}{secrets.token_hex(3)}-p"
        netns.create_owned(name)
        netns.remove_owned(name)

    peer = show("peer: create + remove a network namespace", timed(ns_cycle, runs * 4))
    print(f"  storage driver: {', '.join(sorted(str(x) for x in drivers))}")
    print(f"  ratio dockerd start / namespace cycle: {start / peer:.0f}x")


def bench_run(ns: str, runs: int) -> None:
    print("docker run --rm round trip (busybox, on the bridge)")
    with DockerDaemon(ns, "br0", fixed_cidr="198.18.46.128/25") as d:
        client = d.client()
        began = time.perf_counter()
        ensure_image(client)
        show("image import (first time in a data root)", [time.perf_counter() - began])
        show("image present (second ensure_image)", timed(lambda: ensure_image(client), 5))
        sdk = show(
            "SDK containers.run(remove=True) true",
            timed(lambda: client.containers.run(BUSYBOX_IMAGE, ["true"], remove=True), runs * 2),
        )
        cli = shutil.which("docker")
        if cli:
            argv = [cli, "-H", d.host, "run", "--rm", BUSYBOX_IMAGE, "true"]
            show(
                "docker CLI run --rm true",
                timed(lambda: subprocess.run(argv, check=True, capture_output=True), runs * 2),
            )
        client.close()

    def veth_cycle() -> None:
        with IPRoute(netns=ns) as ipr:
            ipr.link("add", ifname="vb0", kind="veth", peer={"ifname": "vb0p"})
            br = ipr.link_lookup(ifname="br0")[0]
            idx = ipr.link_lookup(ifname="vb0")[0]
            ipr.link("set", index=idx, master=br, state="up")
            ipr.link("del", index=idx)

    peer = show("peer: veth port joins + leaves the bridge", timed(veth_cycle, runs * 4))
    print(f"  ratio docker run --rm / veth cycle: {sdk / peer:.0f}x")


def bench_lab(runs: int) -> None:
    print("full lab setup + teardown")

    def docker_lab() -> None:
        with build_lab(LabConfig(containers=0)) as topo, DockerEngine(topo) as engine:
            engine.start_probe_container()

    def veth_lab() -> None:
        with build_lab(LabConfig(containers=1)):
            pass

    dock = show("lab + dockerd + image + probe container", timed(docker_lab, runs))
    veth = show("peer: veth lab (1 container namespace)", timed(veth_lab, runs))
    print(f"  ratio docker lab / veth lab: {dock / veth:.1f}x")


def probe_during_churn(
    pinned: bool, seconds: float, rate: float = 20.0, high_port_mac: bool = True
) -> None:
    """DNS from the probing container at a fixed rate while Docker churns.

    Like the C library's resolver, every lookup uses a fresh UDP socket (a
    new source port). A single long-lived socket would measure something
    else: after an outage its flow can stay stuck behind a conntrack entry
    made without NAT, for as long as it keeps sending.
    """
    with (
        build_lab(LabConfig(containers=0, pin_mac=pinned)) as topo,
        DockerEngine(topo) as engine,
    ):
        probe = engine.start_probe_container(high_port_mac=high_port_mac)
        server = (topo.dns_server, 53)
        pending: dict[socket.socket, tuple[int, float]] = {}  # socket → (attempt, sent at)
        outcome: list[bool] = []
        changes = 0
        with IPRoute(netns=topo.host_ns) as ipr, DockerChurn(topo, duration=seconds) as churn:
            mac = ipr.get_links(ifname=topo.bridge)[0].get("address")
            began = time.monotonic()
            while (now := time.monotonic()) < began + seconds + 1.0:
                if now >= began + len(outcome) / rate and now < began + seconds:
                    sock = netns.run_in(  # a socket stays in the namespace it was made in
                        probe.netns_path, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    )
                    sock.setblocking(False)
                    query = dns.message.make_query(topo.dns_name, dns.rdatatype.A)
                    sock.sendto(query.to_wire(), server)
                    pending[sock] = (len(outcome), now)
                    outcome.append(False)
                    new_mac = ipr.get_links(ifname=topo.bridge)[0].get("address")
                    changes += new_mac != mac
                    mac = new_mac
                ready, _, _ = select.select(list(pending), [], [], 0.005)
                for sock in ready:
                    attempt, _ = pending.pop(sock)
                    try:
                        sock.recv(4096)
                        outcome[attempt] = True
                    except OSError:
                        pass
                    sock.close()
                for sock, (_, at) in list(pending.items()):
                    if now - at > 1.0:  # 1 s timeout: a failure
                        del pending[sock]
                        sock.close()
            cycles = churn.cycles
        for sock in pending:
            sock.close()
        failed = sum(1 for o in outcome if not o)
        longest = run = 0
        for o in outcome:
            run = 0 if o else run + 1
            longest = max(longest, run)
        print(
            f"  {'pinned' if pinned else 'unpinned':<9} failed {failed:5d} / {len(outcome):5d} "
            f"({100 * failed / max(len(outcome), 1):5.1f} %)   bridge MAC changes {changes:3d}   "
            f"docker runs {cycles:3d}   longest outage {longest / rate:4.1f} s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure (default 5)")
    parser.add_argument(
        "--compare",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also run the unpinned/pinned A/B for this long each (e.g. 60)",
    )
    parser.add_argument(
        "--probe-port-mac",
        choices=["high", "random"],
        default="high",
        help="MAC of the probing container's bridge port in the A/B (default high: every "
        "churn container's port is then the lowest while attached)",
    )
    args = parser.parse_args()
    runs = max(1, min(args.runs, 50))
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    netns.clean_stale(PREFIX)
    ns = make_bridge_ns()
    try:
        bench_daemon(ns, runs)
        bench_run(ns, runs)
    finally:
        netns.remove_owned(ns)
    bench_lab(runs)
    if args.compare > 0:
        seconds = min(args.compare, 600.0)
        print(f"DNS at 20/s from a real container during docker churn, {seconds:.0f} s each")
        high = args.probe_port_mac == "high"
        print(f"  probe's bridge port MAC: {args.probe_port_mac}")
        probe_during_churn(False, seconds, high_port_mac=high)
        probe_during_churn(True, seconds, high_port_mac=high)
    return 0


if __name__ == "__main__":
    sys.exit(main())
