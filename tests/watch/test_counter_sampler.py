"""The counter sampler on real namespaces, and `netsleuth watch` end to end:
a provoked rise is stored as a ``counters`` event with that delta, a quiet
namespace writes nothing, and a namespace that was deleted is dropped (and so
freed) instead of being read on."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netsleuth import netns
from netsleuth.model import CounterSample, EventKind, NetEvent
from netsleuth.netns import Namespace
from netsleuth.store import Store
from netsleuth.watch.counters import CounterSampler
from netsleuth_testing.watching import stored_probes

pytestmark = pytest.mark.netns

NoPorts = "snmp.Udp.NoPorts"


@pytest.fixture
def make_ns() -> Iterator[Callable[[str], tuple[str, Path]]]:
    """Owned namespaces ``nsl-cw<random>-LABEL`` with lo up; removed afterwards."""
    tag = secrets.token_hex(3)
    created: list[str] = []

    def make(label: str) -> tuple[str, Path]:
        name = f"nsl-cw{tag}-{label}"
        path = netns.create_owned(name)
        created.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name, path

    yield make
    for name in created:
        netns.remove_owned(name)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def closed_port_datagrams(path: Path, count: int) -> None:
    """``count`` datagrams to a closed port on the namespace's loopback."""

    def body() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(count):
                s.sendto(b"x", ("127.0.0.1", 9))

    Namespace(path, None, str(path)).run(body)


def samples(events: list[NetEvent]) -> list[tuple[str, CounterSample]]:
    out = []
    for ev in events:
        assert ev.kind is EventKind.COUNTERS
        assert isinstance(ev.detail, CounterSample)
        out.append((ev.netns, ev.detail))
    return out


def sample_until(sampler: CounterSampler, want: int, tries: int = 20) -> list[NetEvent]:
    """Sample until ``want`` NoPorts were seen (the ICMP answer is handled in
    softirq, so a rise may straddle two samples)."""
    events: list[NetEvent] = []
    for _ in range(tries):
        events += sampler.sample_once()
        if sum(s.deltas.get(NoPorts, 0) for _, s in samples(events)) >= want:
            break
        time.sleep(0.05)
    return events


def test_a_quiet_namespace_writes_nothing_and_a_rise_writes_its_delta(
    make_ns: Callable[[str], tuple[str, Path]],
) -> None:
    _, quiet = make_ns("quiet")
    _, busy = make_ns("busy")
    sampler = CounterSampler(lambda events: None)
    sampler.watch("netns:quiet", str(quiet))
    sampler.watch("netns:busy", str(busy))
    try:
        assert sampler.sample_once() == []  # the baseline
        for _ in range(5):
            time.sleep(0.05)
            assert sampler.sample_once() == []  # nothing happened: nothing to write
        closed_port_datagrams(busy, 6)
        got = samples(sample_until(sampler, 6))
        assert {label for label, _ in got} == {"netns:busy"}
        assert sum(s.deltas.get(NoPorts, 0) for _, s in got) == 6
        assert all(0 < s.seconds < 5 for _, s in got)
        assert all(s.levels == {} for _, s in got)  # no conntrack rise, no table pressure
        assert sampler.sample_once() == []  # and nothing more after it
        assert sampler.samples >= 8
        assert sampler.busy_s > 0
    finally:
        sampler.stop()


def test_one_namespace_under_two_labels_is_read_once(
    make_ns: Callable[[str], tuple[str, Path]],
) -> None:
    _, path = make_ns("twice")
    sampler = CounterSampler(lambda events: None)
    sampler.watch("netns:first", str(path))
    sampler.watch("netns:second", str(path))
    try:
        sampler.sample_once()
        closed_port_datagrams(path, 2)
        got = samples(sample_until(sampler, 2))
        assert {label for label, _ in got} == {"netns:first"}
        assert sum(s.deltas.get(NoPorts, 0) for _, s in got) == 2
    finally:
        sampler.stop()


def test_a_deleted_namespace_is_dropped_and_freed(
    make_ns: Callable[[str], tuple[str, Path]],
) -> None:
    gone, gone_path = make_ns("gone")
    peer, _ = make_ns("peer")
    _, stays = make_ns("stays")
    ip("-n", gone, "link", "add", "vsa", "type", "veth", "peer", "name", "vsb", "netns", peer)
    sampler = CounterSampler(lambda events: None)
    sampler.watch("netns:gone", str(gone_path))
    sampler.watch("netns:stays", str(stays))
    try:
        sampler.sample_once()
        netns.remove_owned(gone)
        assert sampler.sample_once() == []  # no error: it is dropped
        # Its readers are closed, so the kernel frees it: the veth's peer goes too.
        assert wait_gone(peer, "vsb"), "the deleted namespace was kept alive by the sampler"
        closed_port_datagrams(stays, 3)  # the others are still sampled
        got = samples(sample_until(sampler, 3))
        assert {label for label, _ in got} == {"netns:stays"}
    finally:
        sampler.stop()


def wait_gone(ns: str, link: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = subprocess.run(
            ["ip", "-n", ns, "link", "show", link], capture_output=True, check=False
        )
        if shown.returncode != 0:
            return True
        time.sleep(0.1)
    return False


def test_the_sampler_thread_emits_on_its_interval(
    make_ns: Callable[[str], tuple[str, Path]],
) -> None:
    _, path = make_ns("thread")
    emitted: list[NetEvent] = []
    arrived = threading.Event()

    def emit(events: list[NetEvent]) -> None:
        emitted.extend(events)
        if sum(s.deltas.get(NoPorts, 0) for _, s in samples(emitted)) >= 4:
            arrived.set()

    sampler = CounterSampler(emit, interval=0.2)
    sampler.watch("netns:thread", str(path))
    sampler.start()
    try:
        time.sleep(0.5)  # past its baseline
        closed_port_datagrams(path, 4)
        assert arrived.wait(5), emitted
    finally:
        sampler.stop()
    assert 3 <= sampler.samples <= 40  # ~1.5 s at 0.2 s, bounded either way


def test_watch_stores_the_rise_and_nothing_while_quiet(
    make_ns: Callable[[str], tuple[str, Path]], tmp_path: Path
) -> None:
    """`netsleuth watch` on a namespace target (with its own "host"): the
    datagrams sent to a closed port inside the target are in the store as
    one rise of ``snmp.Udp.NoPorts`` by that many; before and after, and in
    the host, no counters event at all."""
    target, target_path = make_ns("target")
    host, _ = make_ns("host")
    store = tmp_path / "w.sqlite"
    argv = [
        sys.executable, "-m", "netsleuth", "watch", "--target", f"netns:{target}",
        "--host-netns", host, "--probe", "icmp:127.0.0.1", "--rate", "5",
        "--duration", "9", "--counters", "0.5", "--store", str(store), "--quiet", "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert stored_probes(store, 5, proc), "watch stored no probes"
        time.sleep(1.5)  # every namespace has had its baseline sample (0.5 s)
        sent_ns = time.time_ns()
        closed_port_datagrams(target_path, 7)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()  # our own child, by PID
            proc.wait(timeout=10)
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out)
    with Store(store) as s:
        runs = s.runs()
        events = [e for e in s.events() if e.kind is EventKind.COUNTERS]
    assert summary["events"].get("counters", 0) == len(events)
    got = samples(events)
    assert {label for label, _ in got} == {f"netns:{target}"}
    assert sum(sample.deltas.get(NoPorts, 0) for _, sample in got) == 7
    # Only around the datagrams: the rest of the run wrote no counters event.
    assert all(abs(e.wall_ns - sent_ns) < 2_000_000_000 for e in events), [
        (e.wall_ns - sent_ns) / 1e9 for e in events
    ]
    # ... and the run was quiet for a while on both sides of them.
    (run,) = runs
    assert run.ended_ns is not None
    assert sent_ns - run.started_ns > 2_000_000_000
    assert run.ended_ns - sent_ns > 3_000_000_000
