"""Real drops in real namespaces, seen by both mechanisms: UDP to a closed
port (NO_SOCKET), an nftables drop rule (NETFILTER_DROP), strict rp_filter
against a spoofed source (IP_RPFILTER); each with the right reason, function,
namespace, device and 5-tuple (bpftrace) or reason and function (ftrace).
Then: the global tracing state is untouched, and what a SIGKILLed run left
(its ftrace instance, its bpftrace) is removed at the next start."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netsleuth import netns
from netsleuth.drops import Drop, DropSource, tracefs
from netsleuth.drops.source import availability
from netsleuth.netns.owners import Owner, owner_alive, process_start_time

pytestmark = pytest.mark.netns

A_IP, B_IP, SPOOF = "198.19.77.1", "198.19.77.2", "198.19.88.5"


class Topo:
    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b
        self.b_inode = os.stat(netns.netns_path(b)).st_ino


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def topo() -> Iterator[Topo]:
    tag = secrets.token_hex(3)
    a, b = f"nslt-{tag}-da", f"nslt-{tag}-db"
    for name in (a, b):
        netns.create_owned(name)
    try:
        _ip("-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
        for ns, dev, addr in ((a, "va", A_IP), (b, "vb", B_IP)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", a, "addr", "add", f"{SPOOF}/32", "dev", "va")
        # B reaches 198.19.88.0/24 through another link: a packet from there on vb fails rp_filter
        _ip("-n", b, "link", "add", "other0", "type", "veth", "peer", "name", "other1")
        _ip("-n", b, "link", "set", "other1", "up")
        _ip("-n", b, "link", "set", "other0", "up")
        _ip("-n", b, "route", "add", "198.19.88.0/24", "dev", "other0")
        nb = netns.Namespace.named(b)
        nb.set_sysctl("net/ipv4/conf/all/rp_filter", 1)
        nb.set_sysctl("net/ipv4/conf/vb/rp_filter", 1)
        rules = (
            "table inet nsltdrop {\n"
            "  chain input {\n"
            "    type filter hook input priority 0;\n"
            "    udp dport 7777 drop\n"
            "  }\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", b, "nft", "-f", "-"], input=rules.encode(), check=True
        )
        yield Topo(a, b)
    finally:
        for name in (a, b):
            netns.remove_owned(name)


class Collected:
    def __init__(self) -> None:
        self.drops: list[Drop] = []
        self.lock = threading.Lock()

    def __call__(self, drops: list[Drop]) -> None:
        with self.lock:
            self.drops.extend(drops)

    def wait_for(self, match: Callable[[Drop], bool], count: int, timeout: float = 8) -> list[Drop]:
        end = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [d for d in self.drops if match(d)]
            if sum(d.count for d in found) >= count or time.monotonic() > end:
                return found
            time.sleep(0.1)


@pytest.fixture(scope="module")
def sources() -> Iterator[dict[str, tuple[DropSource, Collected]]]:
    if availability().mechanism != "bpftrace":
        pytest.skip(f"bpftrace cannot run here: {availability().summary}")
    where = tracefs.find_tracefs()
    assert where is not None
    before = tracefs.global_state(where)
    out = {}
    with contextlib.ExitStack() as stack:
        for mech in ("bpftrace", "ftrace"):
            got = Collected()
            src = DropSource(got, prefer=mech)
            src.start()
            stack.callback(src.stop)
            assert src.mechanism == mech, src.summary
            out[mech] = (src, got)
        assert tracefs.global_state(where) == before  # running changes nothing global
        assert (where / f"instances/netsleuth-{os.getpid()}").is_dir()  # the first of ours
        yield out
    assert tracefs.global_state(where) == before
    assert not (where / f"instances/netsleuth-{os.getpid()}").exists()


def _send_udp(ns: str, dport: int, n: int, src: str = A_IP) -> int:
    """Send ``n`` datagrams from ``src`` in ``ns`` to B; returns the source port."""

    def send() -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        for _ in range(n):
            s.sendto(b"netsleuth", (B_IP, dport))
            time.sleep(0.002)
        port: int = s.getsockname()[1]
        s.close()
        return port

    return netns.Namespace.named(ns).run(send)


CASES = {
    "closed-port": ("NO_SOCKET", "__udp4_lib_rcv", 9, A_IP),
    "nft-drop": ("NETFILTER_DROP", "nft_do_chain", 7777, A_IP),
    "rp_filter": ("IP_RPFILTER", "ip_rcv_finish_core", 9, SPOOF),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_drop_is_seen_with_its_reason_namespace_and_device(
    topo: Topo, sources: dict[str, tuple[DropSource, Collected]], case: str
) -> None:
    reason, location, dport, src = CASES[case]
    sport = _send_udp(topo.a, dport, 5, src)
    _, bpf = sources["bpftrace"]
    mine = bpf.wait_for(lambda d: d.sport == sport and d.dport == dport, 5)
    assert len(mine) == 5, (case, mine[:3])
    for drop in mine:
        assert (drop.reason, drop.netns, drop.ifname, drop.proto) == (
            reason,
            topo.b_inode,
            "vb",
            "udp",
        ), drop
        assert drop.location.startswith(location.split("_core", maxsplit=1)[0]), drop
        assert (drop.saddr, drop.daddr) == (src, B_IP)
    # ftrace: reason and function only, no namespace (other runs' drops may be mixed in)
    _, ft = sources["ftrace"]
    seen = ft.wait_for(lambda d: d.reason == reason and d.location == mine[0].location, 5)
    assert sum(d.count for d in seen) >= 5
    assert all(d.netns == 0 and d.ifname == "" for d in seen)


def test_a_storm_is_aggregated_and_every_drop_counted(
    topo: Topo, sources: dict[str, tuple[DropSource, Collected]]
) -> None:
    src, bpf = sources["bpftrace"]

    def storm() -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((A_IP, 0))
        for _ in range(3000):
            s.sendto(b"x", (B_IP, 7777))
        port: int = s.getsockname()[1]
        s.close()
        return port

    lost0 = src.lost
    sport = netns.Namespace.named(topo.a).run(storm)
    key = ("NETFILTER_DROP", "nft_do_chain", topo.b_inode, "vb")
    # single drops of this storm (its port) and this key's aggregates from now on
    t0 = time.monotonic_ns() - 5 * 10**9
    found = bpf.wait_for(
        lambda d: d.key == key and (d.sport == sport or (d.count > 1 and d.mono_ns > t0)),
        3000,
        timeout=10,
    )
    singles = [d for d in found if d.count == 1]
    assert sum(d.count for d in found) == 3000
    assert src.lost == lost0
    assert len(singles) <= 2 * src.rate  # a storm spans at most two windows here
    assert any(d.count > 100 for d in found)


def test_without_permission_one_line_says_so(as_nobody: list[str]) -> None:
    code = "from netsleuth.drops import availability; print(availability().summary)"
    out = subprocess.run(
        [*as_nobody, sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "kernel drop reasons unavailable: no permission: tracing drops needs root"
    )
    cli = subprocess.run(
        [*as_nobody, sys.executable, "-m", "netsleuth", "drops", "--duration", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "root" in cli.stderr and "Traceback" not in cli.stderr


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _run_killed(mechanism: str, ready: Callable[[int], bool]) -> int:
    """Start `netsleuth drops --mechanism M` and SIGKILL it once ``ready(pid)``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "netsleuth", "drops", "--mechanism", mechanism, "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert _wait(lambda: ready(proc.pid), 60), proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)  # our child, by PID
        proc.wait(10)
    return proc.pid


def test_after_sigkill_the_next_start_removes_the_instance() -> None:
    where = tracefs.find_tracefs()
    assert where is not None
    pid = _run_killed("ftrace", lambda p: (where / f"instances/netsleuth-{p}").is_dir())
    left = where / f"instances/netsleuth-{pid}"
    assert left.is_dir()  # SIGKILL: nothing ran on the way out
    src = DropSource(lambda drops: None, prefer="ftrace")
    src.start()
    try:
        assert not left.exists()
        assert not (tracefs.STATE_DIR / f"{pid}.json").exists()
    finally:
        src.stop()


def test_after_sigkill_no_bpftrace_of_it_runs_on() -> None:
    def bpftrace_of(pid: int) -> Owner | None:
        state = tracefs.RunState.load(tracefs.STATE_DIR / f"{pid}.json")
        return None if state is None else state.bpftrace

    seen: dict[str, Owner] = {}

    def ready(pid: int) -> bool:
        tracer = bpftrace_of(pid)
        if tracer is not None:
            seen["t"] = tracer
        return tracer is not None

    _run_killed("bpftrace", ready)
    tracer = seen["t"]
    # it dies with its owner (death signal); had it not, the next start ends it
    src = DropSource(lambda drops: None, prefer="ftrace")
    src.start()
    src.stop()
    assert _wait(lambda: not owner_alive(tracer), 10)


def test_the_next_start_ends_a_stale_bpftrace_of_a_dead_owner(tmp_path: Path) -> None:
    """A bpftrace whose owner died without its death signal reaching it."""
    program = availability().bpftrace
    if program is None:
        pytest.skip("no bpftrace")
    dead = subprocess.Popen(["true"])
    dead.wait()
    tracer = subprocess.Popen(
        [program, "-e", "interval:s:1 { }"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        start = None
        for _ in range(50):
            start = process_start_time(tracer.pid)
            if start is not None:
                break
            time.sleep(0.05)
        assert start is not None
        state = tracefs.RunState(
            Owner(dead.pid, 1), Owner(tracer.pid, start), "", tmp_path / "x.json"
        )
        state.save()
        removed = tracefs.clean_stale(None, tmp_path)
        assert removed == [f"bpftrace {tracer.pid}"]
        assert tracer.wait(10) is not None
        assert not (tmp_path / "x.json").exists()
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()


def test_drops_cli_json_summary(topo: Topo) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netsleuth",
            "drops",
            "--netns",
            topo.b,
            "--duration",
            "6",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # send while it runs (bpftrace takes a moment to start: keep sending)
    end = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < end:
        _send_udp(topo.a, 9, 5)
        time.sleep(0.3)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["mechanism"] == "bpftrace"
    (row,) = summary["drops"]
    assert (row["reason"], row["netns"], row["device"], row["location"]) == (
        "NO_SOCKET",
        topo.b,
        "vb",
        "__udp4_lib_rcv",
    )
    assert row["count"] >= 5 and summary["total"] == row["count"]
    assert row["example"].startswith(f"udp {A_IP}:") and row["example"].endswith(f"> {B_IP}:9")
