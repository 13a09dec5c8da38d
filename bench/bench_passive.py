"""Benchmark: how many DNS queries per second `watch --passive` keeps up with
(every query matched with its answer, no frame dropped by the kernel), and
its CPU per 1,000 queries, next to `tcpdump -w /dev/null` on the same bridge
with the same traffic in the same run (run as root).

Traffic without a DNS server in the loop: a capture of N query/answer pairs
is generated first (1,000 clients with their own MACs, 4 servers, many ports,
random ids, 1,000 names, A and AAAA, one answer in 20 NXDOMAIN), and
`tcpreplay` sends it at a fixed rate (``--pps`` = 2 x the query rate, each
answer right after its query) from a namespace whose veth is a port of the
lab bridge. The bridge learns the clients' and servers' MACs on that port, so
it forwards nothing; the capture on the bridge (promiscuous, as the passive
source opens it) sees every frame. The ground truth is the capture's own
counts: a rate was kept up with when the observer saw N queries, matched N
answers with the rcodes the capture holds, and the kernel dropped nothing
(``PACKET_STATISTICS``). Frames the sending veth itself dropped (its
``tx_dropped``) are printed: they never reached the bridge.

For each rate: the observer (a separate process running
:class:`netsleuth.passive.source.PassiveSource` on the bridge) with its
compiled modules, then in plain Python (the same process with the sources
forced, when a compiled build exists), then tcpdump; each on its own replay
of the same capture.

The observer takes its results every 50 ms, as the watch engine does, and
its CPU (user + system, from ``getrusage``) covers the replay and the second
after it; tcpdump's is its whole run (``wait4``).

``--dnsperf RATES`` adds the real DNS path: dnsperf in a lab client against a
UDP reflector (Python) in another namespace on the bridge; slower, since the
generator and the reflector share the cores with the capture.

    .venv/bin/python bench/bench_passive.py [--rates 25000,50000,100000,150000]
        [--seconds 3] [--modes compiled,plain] [--dnsperf 20000]
"""

from __future__ import annotations

import argparse
import collections
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import platform
import random
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

RESPONDER_ADDR = "198.18.0.200"
REPLAY_PORT, REPLAY_MAC = "vreplay", "02:ff:00:00:00:02"
HOT_MODULES = ("netsleuth.passive.wire", "netsleuth.passive.matcher")


# -- the capture replayed ---------------------------------------------------------------
def make_capture(path: Path, pairs: int, seed: int = 1) -> list[int]:
    """Write ``pairs`` query/answer pairs to a pcap; returns each pair's
    rcode (the ground truth). Every (client, port, id, name) is unique, so
    each pair is one query (no retransmissions)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "testing"))
    from netsleuth.packets.writer import pcap_bytes
    from netsleuth_testing.frames import dns_frame

    rng = random.Random(seed)
    names = [f"h{rng.randrange(10**6)}.svc{i % 37}.bench.test" for i in range(1000)]
    servers = [(f"198.18.128.{53 + k}", f"02:5e:00:00:01:{k:02x}") for k in range(4)]
    rcodes: list[int] = []
    frames: list[tuple[int, bytes]] = []
    for i in range(pairs):
        c = i % 1000
        client, cmac = (
            f"198.18.{64 + c // 250}.{c % 250 + 1}",
            f"02:5e:01:00:{c >> 8:02x}:{c & 255:02x}",
        )
        server, smac = servers[i % 4]
        port, qid, name = (
            1024 + (i // 1000) % 60000,
            rng.randrange(65536),
            names[rng.randrange(1000)],
        )
        qtype = 28 if i % 4 == 3 else 1
        rcode = 3 if rng.randrange(20) == 0 else 0
        rcodes.append(rcode)
        common: dict[str, Any] = {"dns_id": qid, "qname": name, "qtype": qtype}
        frames.append((0, dns_frame(cmac, smac, client, server, sport=port, dport=53, **common)))
        frames.append((0, dns_frame(smac, cmac, server, client, sport=53, dport=port, response=True,
                                    rcode=rcode, answer="198.18.200.1" if qtype == 1 and not rcode
                                    else None, **common)))  # fmt: skip
    path.write_bytes(pcap_bytes(frames, nanos=False))
    return rcodes


def truth_of(rcodes: list[int], n: int) -> dict[str, int]:
    """What the first ``n`` pairs hold (tcpreplay --limit sends those)."""
    nx = sum(1 for r in rcodes[:n] if r == 3)
    return {"queries": n, "ok": n - nx, "nxdomain": nx}


def replay(ns: str, pcap: Path, pps: int, packets: int) -> dict[str, float]:
    """tcpreplay ``packets`` frames of ``pcap`` at ``pps`` from ``ns``'s eth0."""
    from netsleuth import netns

    argv = ["tcpreplay", "-i", "eth0", f"--pps={pps}", f"--limit={packets}", "--preload-pcap",
            f"--pps-multi={max(1, pps // 20000)}", str(pcap)]  # fmt: skip
    proc = subprocess.run(netns.exec_argv(ns, argv), capture_output=True, text=True,
                          timeout=packets / pps + 60, check=False)  # fmt: skip
    out = proc.stdout + proc.stderr
    got: dict[str, float] = {}
    for key, pattern in {
        "sent": r"Actual: (\d+) packets",
        "seconds": r"sent in ([\d.]+) seconds",
        "pps": r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps",
        "failed": r"Failed packets:\s+(\d+)",
    }.items():
        m = re.search(pattern, out)
        got[key] = float(m.group(1)) if m else -1.0
    if got["sent"] < 0:
        raise RuntimeError(f"tcpreplay: {out.strip()[-400:]}")
    return got


def tx_dropped(ns: str) -> int:
    """Frames the replaying veth could not hand to its peer (never on the bridge)."""
    from netsleuth import netns

    out = subprocess.run(netns.exec_argv(ns, ["ip", "-j", "-s", "link", "show", "dev", "eth0"]),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(json.loads(out)[0]["stats64"]["tx"]["dropped"])


# -- the observer process ---------------------------------------------------------------
class _Sources(importlib.abc.MetaPathFinder):
    """Loads the hot modules from their .py files: the plain-Python figure."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in HOT_MODULES:
            return None
        src = Path(__file__).resolve().parent.parent / "src" / (fullname.replace(".", "/") + ".py")
        return importlib.util.spec_from_file_location(fullname, src)


def observer(host_ns: str, bridge: str, mode: str) -> None:
    """PassiveSource on the bridge until stdin closes; prints its figures."""
    if mode == "plain":
        sys.meta_path.insert(0, _Sources())
    from netsleuth import netns
    from netsleuth.compiled import compiled_modules
    from netsleuth.passive.names import ClientNamer
    from netsleuth.passive.source import PassiveSource, Side

    source = PassiveSource(
        [Side(bridge, "client")], netns.netns_path(host_ns), timeout_s=1.0, namer=ClientNamer([])
    ).start()
    outcomes: collections.Counter[str] = collections.Counter()

    def take() -> None:  # as the watch engine does, every 50 ms
        outcomes.update(r.outcome.name.lower() for r in source.take())

    before = resource.getrusage(resource.RUSAGE_SELF)
    print("ready", flush=True)
    while not (select.select([sys.stdin], [], [], 0.05)[0] and not sys.stdin.read(1)):
        take()
    for _ in range(26):  # let the last queries' timeouts pass
        time.sleep(0.05)
        take()
    source.stop()
    take()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sys_s = after.ru_stime - before.ru_stime
    hot = [m for m in compiled_modules() if m in HOT_MODULES]
    print(
        json.dumps(
            {
                **source.summary(),
                "outcomes": outcomes,
                "cpu_s": cpu,
                "sys_s": sys_s,
                "compiled": hot,
            }
        )
    )


def wait_line(proc: subprocess.Popen[str], stream: str, needle: str, timeout: float = 20) -> None:
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([pipe], [], [], left)[0]:
            raise RuntimeError(f"{proc.args[0]} did not say {needle!r}: {seen!r}")
        line = pipe.readline()
        if not line:
            raise RuntimeError(f"{proc.args} exited: {seen!r}")
        seen += line


def wait_cpu(proc: subprocess.Popen[str]) -> float:
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def start_observer(host_ns: str, bridge: str, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", "observer", host_ns, bridge, mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_line(proc, "stdout", "ready")
    return proc


def end_observer(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    result: dict[str, Any] = json.loads(proc.stdout.read().strip().splitlines()[-1])
    wait_cpu(proc)
    return result


def observer_row(obs: dict[str, Any], truth: dict[str, int]) -> dict[str, Any]:
    drops = sum(i["kernel_drops"] for i in obs["interfaces"])
    outcomes = obs["outcomes"]
    matched = truth["queries"] == obs["queries"] == obs["answered"]
    kept = (matched and drops == 0 and outcomes.get("ok", 0) == truth.get("ok", 0)
            and outcomes.get("nxdomain", 0) == truth.get("nxdomain", 0))  # fmt: skip
    return {
        "compiled": obs["compiled"],
        "queries_seen": obs["queries"],
        "answered": obs["answered"],
        "unanswered": obs["unanswered"],
        "outcomes": outcomes,
        "kernel_drops": drops,
        "kept_up": kept,
        "cpu_s": round(obs["cpu_s"], 3),
        "system_cpu_s": round(obs["sys_s"], 3),
        "cpu_ms_per_1000": round(1e6 * obs["cpu_s"] / max(1, truth["queries"]), 2),
    }


def tcpdump_start(host_ns: str, bridge: str) -> subprocess.Popen[str]:
    from netsleuth import netns

    argv = ["tcpdump", "-i", bridge, "-nn", "-B", "32768", "-w", "/dev/null",
            "udp port 53 or tcp port 53"]  # fmt: skip
    proc = subprocess.Popen(
        netns.exec_argv(host_ns, argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wait_line(proc, "stderr", "listening on")
    return proc


def tcpdump_end(proc: subprocess.Popen[str], frames: int) -> dict[str, Any]:
    time.sleep(1.5)  # libpcap hands a ring block over at the latest 1 s after its first frame
    proc.send_signal(signal.SIGTERM)  # by PID
    cpu = wait_cpu(proc)
    assert proc.stderr is not None
    err = proc.stderr.read()
    got = {k: int(m.group(1)) if (m := re.search(rf"(\d+) packets? {k}", err)) else -1
           for k in ("captured", "dropped by kernel")}  # fmt: skip
    return {
        "frames": frames,
        "captured": got["captured"],
        "kernel_drops": got["dropped by kernel"],
        "kept_up": got["captured"] == frames and got["dropped by kernel"] == 0,
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_1000": round(1e6 * cpu / max(1, frames // 2), 2),
    }


# -- the real DNS path (optional) -------------------------------------------------------
def reflector(seconds: float) -> None:
    """Answer every query by sending it back with QR set, until ``seconds`` pass."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((RESPONDER_ADDR, 53))
    sock.setblocking(False)
    end = time.monotonic() + seconds
    print("ready", flush=True)
    while time.monotonic() < end:
        if not select.select([sock], [], [], 0.2)[0]:
            continue
        for _ in range(4096):
            try:
                data, addr = sock.recvfrom(2048)
            except BlockingIOError:
                break
            if len(data) >= 12:
                sock.sendto(data[:2] + bytes([data[2] | 0x80, data[3] & 0xF0]) + data[4:], addr)


def run_dnsperf(client_ns: str, datafile: Path, rate: int, seconds: float) -> dict[str, int]:
    from netsleuth import netns

    argv = ["dnsperf", "-s", RESPONDER_ADDR, "-d", str(datafile), "-l", str(seconds),
            "-Q", str(rate), "-c", "8", "-q", "500", "-t", "1"]  # fmt: skip
    out = subprocess.run(netns.exec_argv(client_ns, argv), capture_output=True, text=True,
                         timeout=seconds + 30, check=False).stdout  # fmt: skip
    figures = {}
    for key, pattern in {
        "sent": r"Queries sent:\s+(\d+)",
        "completed": r"Queries completed:\s+(\d+)",
    }.items():
        m = re.search(pattern, out)
        figures[key] = int(m.group(1)) if m else -1
    return figures


def dnsperf_rows(topo: Any, rates: list[int], seconds: float, tmp: Path) -> list[dict[str, Any]]:
    from netsleuth import netns
    from netsleuth.lab.topology import add_bridge_peer

    data = tmp / "queries.txt"
    data.write_text("".join(f"q{i}.bench.test A\n" for i in range(1000)))
    resp_ns = f"nsl-{topo.run_id}-resp"
    add_bridge_peer(topo, resp_ns, "vresp", "02:ff:00:00:00:01", RESPONDER_ADDR)
    total = (seconds * 2 + 10) * len(rates) + 30
    refl = subprocess.Popen(
        netns.exec_argv(resp_ns, [sys.executable, __file__, "--role", "reflector", str(total)]),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    rows = []
    try:
        wait_line(refl, "stdout", "ready")
        client = topo.container_ns[0]
        for rate in rates:
            proc = start_observer(topo.host_ns, topo.bridge, "compiled")
            perf = run_dnsperf(client, data, rate, seconds)
            obs = end_observer(proc)
            truth = {"queries": perf["sent"], "ok": perf["completed"]}
            row = observer_row(obs, truth)
            matched = obs["queries"] == perf["sent"] and obs["answered"] == perf["completed"]
            row["kept_up"] = matched and row["kernel_drops"] == 0
            dump = tcpdump_start(topo.host_ns, topo.bridge)
            perf_t = run_dnsperf(client, data, rate, seconds)
            t = tcpdump_end(dump, perf_t["sent"] + perf_t["completed"])
            rows.append({"offered_qps": rate, "dnsperf": perf, "observer": row, "tcpdump": t})
            print(f"dnsperf {rate:>6}/s: sent {perf['sent']} completed {perf['completed']}; "
                  f"observer seen {obs['queries']} answered {obs['answered']} "
                  f"drops {row['kernel_drops']} kept up {row['kept_up']} "
                  f"{row['cpu_ms_per_1000']} ms CPU/1000 | tcpdump {t['cpu_ms_per_1000']} ms/1000",
                  flush=True)  # fmt: skip
    finally:
        refl.terminate()  # by PID
        refl.wait(10)
        netns.remove_owned(resp_ns)
    return rows


# -- main -------------------------------------------------------------------------------
def measure(  # noqa: PLR0917
    topo: Any, replay_ns: str, pcap: Path, mode: str, rate: int, truth: dict[str, int]
) -> dict[str, Any]:
    """One replay of the first ``truth["queries"]`` pairs at ``rate`` with
    ``mode`` (compiled / plain observer, tcpdump) capturing on the bridge."""
    n = truth["queries"]
    lost = tx_dropped(replay_ns)
    if mode == "tcpdump":
        proc = tcpdump_start(topo.host_ns, topo.bridge)
    else:
        proc = start_observer(topo.host_ns, topo.bridge, mode)
    sent = replay(replay_ns, pcap, 2 * rate, 2 * n)
    lost = tx_dropped(replay_ns) - lost
    res = tcpdump_end(proc, 2 * n) if mode == "tcpdump" else observer_row(end_observer(proc), truth)
    if mode == "compiled" and sorted(res["compiled"]) != sorted(HOT_MODULES):
        raise RuntimeError(f"the observer ran {res['compiled']} compiled: the build is stale")
    res["replay"] = {
        "qps": round(sent["pps"] / 2),
        "sent": int(sent["sent"]),
        "failed": int(sent["failed"]),
        "veth_tx_dropped": lost,
    }
    return res


def summary_line(res: dict[str, Any], n: int) -> str:
    seen = (
        f"matched {res['answered']}/{n}"
        if "answered" in res
        else (f"captured {res['captured']}/{2 * n} frames")
    )
    return (
        f"replayed {res['replay']['qps']:>6} q/s, {seen}, kernel drops {res['kernel_drops']}, "
        f"veth drops {res['replay']['veth_tx_dropped']}, kept up {res['kept_up']}, "
        f"{res['cpu_ms_per_1000']} ms CPU/1000 queries"
    )


def replay_peer(topo: Any) -> str:
    """A namespace whose eth0 (up, no address) is a port of the lab bridge."""
    from netsleuth.lab.topology import add_bridge_peer
    from netsleuth.netns import Links

    name = f"nsl-{topo.run_id}-replay"
    peer = add_bridge_peer(topo, name, REPLAY_PORT, REPLAY_MAC)

    def up() -> None:
        with Links() as links:
            links.set(links.index("eth0"), up=True)

    peer.run(up)
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--rates", default="25000,50000,100000,150000", help="queries/s offered")
    parser.add_argument("--seconds", type=float, default=3.0, help="replay length per rate")
    parser.add_argument("--modes", default="compiled,plain", help="observer builds to measure")
    parser.add_argument("--dnsperf", default="", help="rates for the real DNS path (dnsperf)")
    args = parser.parse_args()
    if args.role:
        if args.role[0] == "reflector":
            reflector(float(args.role[1]))
        else:
            observer(args.role[1], args.role[2], args.role[3])
        return 0
    from netsleuth import compiled, netns
    from netsleuth.lab import LabConfig, build_lab

    rates = [int(r) for r in args.rates.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if "compiled" in modes and not compiled.is_fresh():
        print("no fresh compiled build: measuring plain Python only", flush=True)
        modes = ["plain"]
    print(f"python {platform.python_version()}; cores {os.cpu_count()}; "
          f"load {os.getloadavg()[0]:.1f}; modes {modes}", flush=True)  # fmt: skip
    rows: list[dict[str, Any]] = []
    with build_lab(LabConfig(containers=1)) as topo, tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "dns.pcap"
        pairs = int(max(rates) * args.seconds)
        t0 = time.monotonic()
        rcodes = make_capture(pcap, pairs)
        print(f"capture: {pairs} query/answer pairs ({pcap.stat().st_size >> 20} MiB) "
              f"in {time.monotonic() - t0:.1f} s", flush=True)  # fmt: skip
        replay_ns = replay_peer(topo)
        try:
            for rate in rates:
                n = int(rate * args.seconds)
                truth = truth_of(rcodes, n)
                row: dict[str, Any] = {"offered_qps": rate, "queries": n, "truth": truth}
                for mode in [*modes, "tcpdump"]:
                    row[mode] = measure(topo, replay_ns, pcap, mode, rate, truth)
                    print(f"  {rate:>6} q/s {mode:>8}: {summary_line(row[mode], n)}", flush=True)
                for mode in modes:
                    row[mode]["cpu_ratio_to_tcpdump"] = round(
                        row[mode]["cpu_ms_per_1000"] / max(1e-9, row["tcpdump"]["cpu_ms_per_1000"]),
                        1,
                    )
                rows.append(row)
            dns_rows = (dnsperf_rows(topo, [int(r) for r in args.dnsperf.split(",")],
                                     args.seconds, Path(tmp)) if args.dnsperf else [])  # fmt: skip
        finally:
            netns.remove_owned(replay_ns)
    print("\nhighest rate kept up with (all matched, no kernel drop), as tcpreplay delivered it:")
    for mode in [*modes, "tcpdump"]:
        kept = [r[mode]["replay"]["qps"] for r in rows if r[mode]["kept_up"]]
        lost = [r[mode]["replay"]["qps"] for r in rows if not r[mode]["kept_up"]]
        print(
            f"  {mode:>8}: {max(kept) if kept else 'none'} q/s"
            f"{f' (fell behind at {min(lost)} q/s)' if lost else ''}; CPU ms/1000 queries: "
            + ", ".join(f"{r[mode]['cpu_ms_per_1000']}@{r[mode]['replay']['qps']}" for r in rows)
        )
    print(json.dumps({"replay": rows, "dnsperf": dns_rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
