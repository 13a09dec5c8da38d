"""The engine's side of the worker protocol: each message, and a worker that
breaks it. Unit tests feed one runner over a pipe; the netns test runs the
whole engine against a worker that speaks an old tuple form."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth.errors import NetsleuthError
from netsleuth.model import NetEvent, Outcome, ProbeResult
from netsleuth.probes import (
    Done,
    Failed,
    ProbeSlot,
    Ready,
    Results,
    WorkerConfig,
    WorkerStats,
)
from netsleuth.watch import WatchConfig, WatchEngine
from netsleuth.watch import engine as engine_module

SLOTS = (
    ProbeSlot("dns:198.18.0.2/x.test/A", "198.18.0.2"),
    ProbeSlot("tcp:198.18.0.2:53", "198.18.0.2"),
)


class Batches:
    def __init__(self) -> None:
        self.results: list[ProbeResult] = []

    def observe_batch(self, results: Sequence[ProbeResult]) -> None:
        self.results.extend(results)

    def observe_event(self, event: NetEvent) -> None:
        pass


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[tuple[WatchEngine, Connection, Batches]]:
    """An engine with one runner whose worker end of the pipe the test holds."""
    batches = Batches()
    engine = WatchEngine(
        WatchConfig(targets=("host",), probes=("tcp:198.18.0.2:53",)),
        tmp_path / "s.sqlite",
        observers=[batches],
    )
    ours, theirs = Pipe()
    engine._runners[0].conn = ours
    yield engine, theirs, batches
    ours.close()
    theirs.close()


def _feed(engine: WatchEngine, worker_end: Connection, *messages: object) -> None:
    runner = engine._runners[0]
    for message in messages:
        worker_end.send(message)
        engine._receive(runner)


def test_ready_results_done(fed: tuple[WatchEngine, Connection, Batches]) -> None:
    engine, worker_end, batches = fed
    rows = Results.of(
        [
            (0, 2_000, 1_000, Outcome.OK, 700_000, "198.18.0.9"),
            (1, 2_001, 1_001, Outcome.REFUSED, None, ""),
        ]
    )
    stats = WorkerStats(sent=2, max_lag_ms=0.5, late=0)
    _feed(engine, worker_end, Ready(SLOTS), rows, Done(stats))
    runner = engine._runners[0]
    assert batches.results == [
        ProbeResult(
            2_000, 1_000, "host", SLOTS[0].text, "198.18.0.2", Outcome.OK, 700_000, "198.18.0.9"
        ),
        ProbeResult(2_001, 1_001, "host", SLOTS[1].text, "198.18.0.2", Outcome.REFUSED, None, ""),
    ]
    assert engine.stats.attempts == 2
    assert runner.done and runner.worker_stats == stats and not runner.error


def test_failed_is_the_targets_error(fed: tuple[WatchEngine, Connection, Batches]) -> None:
    engine, worker_end, _ = fed
    _feed(engine, worker_end, Failed("no probe to run"))
    runner = engine._runners[0]
    assert runner.done and runner.error == "no probe to run"


def test_an_unknown_message_fails_the_target_in_one_line_and_ends_the_worker(
    fed: tuple[WatchEngine, Connection, Batches],
) -> None:
    engine, worker_end, batches = fed
    runner = engine._runners[0]
    runner.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _feed(engine, worker_end, Ready(SLOTS), ("results", [(0, 1, 1, 0, -1, "")]))
        assert runner.process.wait(5) == -9
    finally:
        if runner.process.poll() is None:
            runner.process.kill()
            runner.process.wait()
    assert runner.done
    assert runner.error == "probe worker sent a tuple, not a protocol message"
    assert batches.results == []


def test_results_of_a_probe_never_announced_fail_the_target(
    fed: tuple[WatchEngine, Connection, Batches],
) -> None:
    engine, worker_end, batches = fed
    _feed(engine, worker_end, Ready(SLOTS[:1]), Results.of([(3, 1, 1, Outcome.OK, 5, "")]))
    runner = engine._runners[0]
    assert runner.done
    assert runner.error == "probe worker sent results that do not fit its probes"
    assert batches.results == []


def test_a_worker_that_dies_is_an_error(fed: tuple[WatchEngine, Connection, Batches]) -> None:
    engine, worker_end, _ = fed
    runner = engine._runners[0]
    worker_end.close()
    engine._receive(runner)
    assert runner.done and runner.error.startswith("probe worker exited unexpectedly")


# A worker of another version: it reads its config and answers in the old tuple form.
OLD_WORKER = """
import sys, time
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[1]))
cfg = conn.recv()
conn.send(("ready", [(p, "") for p in cfg.probes]))
time.sleep(30)
"""


@pytest.mark.netns
def test_watch_fails_a_target_whose_worker_breaks_the_protocol(
    make_netns: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_netns("proto")
    with IPRoute(netns=path.name) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    spawned: list[subprocess.Popen[bytes]] = []

    def old_worker(cfg: WorkerConfig) -> tuple[subprocess.Popen[bytes], Connection]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc = subprocess.Popen(
            [sys.executable, "-c", OLD_WORKER, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        spawned.append(proc)
        theirs.close()
        conn = Connection(ours.detach())
        conn.send(cfg)
        return proc, conn

    monkeypatch.setattr(engine_module, "spawn_worker", old_worker)
    engine = WatchEngine(
        WatchConfig(targets=(f"netns:{path.name}",), probes=("icmp:127.0.0.1",), duration=10),
        tmp_path / "s.sqlite",
    )
    with pytest.raises(NetsleuthError) as raised:
        engine.run()
    assert str(raised.value) == (
        f"netns:{path.name}: probe worker sent a tuple, not a protocol message"
    )
    [proc] = spawned
    assert proc.poll() is not None  # ended, not left behind
