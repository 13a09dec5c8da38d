"""The messages between the watch engine and a probe worker (pure)."""

from __future__ import annotations

import pickle

import pytest

from netsleuth.model import Outcome
from netsleuth.probes.protocol import (
    Done,
    Failed,
    ProbeSlot,
    Ready,
    ResultRow,
    Results,
    Stop,
    WorkerConfig,
    WorkerStats,
)

ROWS: list[ResultRow] = [
    (0, 1_700_000_000_000_000_000, 5_000, Outcome.OK, 1_200_000, "198.18.0.9"),
    (1, 1_700_000_000_001_000_000, 6_000, Outcome.TIMEOUT, None, ""),
    (0, 1_700_000_000_002_000_000, 7_000, Outcome.NXDOMAIN, 900_000, ""),
]


def test_results_keep_rows_in_columns_and_give_them_back() -> None:
    batch = Results.of(ROWS)
    assert len(batch) == 3
    assert batch.index == (0, 1, 0)
    assert batch.outcome == (Outcome.OK, Outcome.TIMEOUT, Outcome.NXDOMAIN)
    assert batch.latency_ns == (1_200_000, None, 900_000)
    assert list(batch.rows()) == ROWS


def test_an_empty_batch() -> None:
    batch = Results.of([])
    assert len(batch) == 0 and list(batch.rows()) == []


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        Results((0, 1), (1, 2), (1, 2), (Outcome.OK, Outcome.OK), (None, None), ("",))


def test_a_batch_garbled_on_the_wire_is_caught_when_read() -> None:
    # Unpickling does not run __init__: rows() checks the lengths again.
    batch = Results.of(ROWS)
    object.__setattr__(batch, "answer", ("",))
    with pytest.raises(ValueError):
        list(batch.rows())


@pytest.mark.parametrize(
    "message",
    [
        WorkerConfig("netns:a", "/run/netns/a", "a", ("dns:198.18.0.2/x.test",), 10.0, 1.0),
        Stop(),
        Ready((ProbeSlot("dns:198.18.0.2/x.test/A", "198.18.0.2"), ProbeSlot("resolve:x", ""))),
        Results.of(ROWS),
        Done(WorkerStats(sent=30, max_lag_ms=1.5, late=0)),
        Failed("no probe to run"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_message_crosses_a_pipe_unchanged(message: object) -> None:
    assert pickle.loads(pickle.dumps(message)) == message


def test_outcomes_cross_as_enum_members_and_each_once() -> None:
    batch = Results.of([(0, i, i, Outcome.TIMEOUT, None, "") for i in range(1000)])
    wire = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(wire).outcome[999] is Outcome.TIMEOUT
    assert len(wire) < 1000 * 30  # a few bytes an attempt, not an object each


def test_worker_stats_keep_the_summary_keys() -> None:
    stats = WorkerStats(sent=12, max_lag_ms=3.25, late=1)
    assert stats.to_json() == {"sent": 12, "max_lag_ms": 3.25, "late": 1}
