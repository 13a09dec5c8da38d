"""A real worker process speaking the protocol. It stays in this process's
namespace and only connects to 127.0.0.1: no root, nothing changed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from netsleuth.model import Outcome
from netsleuth.probes import (
    Done,
    Failed,
    ProbeSlot,
    Ready,
    Results,
    Stop,
    WorkerConfig,
    spawn_worker,
)
from netsleuth.probes.worker import start_worker


def _config(**kw: object) -> WorkerConfig:
    args: dict[str, object] = {
        "target": "host",
        "netns_path": None,
        "netns_name": None,
        "probes": ("tcp:127.0.0.1:9",),
        "rate": 50.0,
        "timeout": 0.5,
        "count": 3,
    }
    args.update(kw)
    return WorkerConfig(**args)  # type: ignore[arg-type]


def _messages(conn: Connection, limit: int = 200) -> Iterator[object]:
    """Messages until Done or Failed (bounded, 5 s each at most)."""
    for _ in range(limit):
        assert conn.poll(5), "the worker went quiet"
        message = conn.recv()
        yield message
        if isinstance(message, Done | Failed):
            return


@pytest.fixture
def worker() -> Iterator[list[tuple[subprocess.Popen[bytes], Connection]]]:
    started: list[tuple[subprocess.Popen[bytes], Connection]] = []
    yield started
    for proc, conn in started:
        conn.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_ready_then_results_then_done(
    worker: list[tuple[subprocess.Popen[bytes], Connection]],
) -> None:
    proc, conn = spawn_worker(_config())
    worker.append((proc, conn))
    messages = list(_messages(conn))
    assert messages[0] == Ready((ProbeSlot("tcp:127.0.0.1:9", "127.0.0.1"),))
    batches = [m for m in messages[1:-1] if isinstance(m, Results)]
    assert len(batches) == len(messages) - 2  # nothing but results in between
    rows = [row for batch in batches for row in batch.rows()]
    assert [row[0] for row in rows] == [0, 0, 0]
    for _, wall, mono, outcome, latency, _ in rows:
        assert wall > mono > 0 and isinstance(outcome, Outcome)
        assert (latency is None) == (outcome is not Outcome.OK)
    done = messages[-1]
    assert isinstance(done, Done) and done.stats.sent == 3
    assert proc.wait(5) == 0


def test_stop_ends_an_unbounded_worker_after_its_last_results(
    worker: list[tuple[subprocess.Popen[bytes], Connection]],
) -> None:
    proc, conn = spawn_worker(_config(count=None, rate=20.0))
    worker.append((proc, conn))
    assert isinstance(conn.recv(), Ready)
    assert conn.poll(5)
    first = conn.recv()  # stopped before its first slot, it would have sent nothing
    assert isinstance(first, Results)
    conn.send(Stop())
    *rest, last = _messages(conn)
    assert isinstance(last, Done)
    assert last.stats.sent == len(first) + sum(len(m) for m in rest if isinstance(m, Results))
    assert proc.wait(5) == 0


def test_anything_but_stop_is_refused_in_one_line(
    worker: list[tuple[subprocess.Popen[bytes], Connection]],
) -> None:
    proc, conn = spawn_worker(_config(count=None, rate=20.0))
    worker.append((proc, conn))
    assert isinstance(conn.recv(), Ready)
    conn.send("stop")  # the old string form
    *_, last = _messages(conn)
    assert last == Failed("ProtocolError: unexpected message from the engine: 'stop'")


def test_a_worker_given_no_config_says_so(
    worker: list[tuple[subprocess.Popen[bytes], Connection]],
) -> None:
    proc, conn = start_worker()
    worker.append((proc, conn))
    conn.send({"target": "host"})
    assert list(_messages(conn)) == [
        Failed("ProtocolError: expected a WorkerConfig first, got dict")
    ]
