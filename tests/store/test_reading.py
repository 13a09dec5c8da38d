"""The narrow reads of a report give what the full read gives: the columns
without latency and monotonic time, the attempts grouped by target, and the
sourced failures, whichever read came first; over blocks of two runs that
overlap in time, rows not yet compacted, attempts while a target was gone,
and ranges that cut blocks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from netsleuth.analysis import analyze, analyze_data
from netsleuth.model import Outcome
from netsleuth.store import ProbeBatch, ProbeColumns, Store, StoreWriter

_S = 1_000_000_000
KEYS = (
    ("host", "dns:198.18.255.2/a/A", "198.18.255.2"),
    ("netns:c0", "dns:198.18.255.2/a/A", "198.18.255.2"),
    ("netns:c0", "tcp:198.18.255.3:80", "198.18.255.3"),
    ("netns:c1", "dns:198.18.255.2/a/A", "198.18.255.2"),
)
ANSWERS = ("198.18.255.10", "from 198.18.0.5:40000", "from 198.18.0.6:40001", "refused")


def batch(start_ns: int, n: int, step_ns: int, seed: int) -> ProbeBatch:
    """``n`` attempts of the series in turn; failures in short outages, some
    with the source they sent from, and stretches while c1 was gone."""
    rng = np.random.default_rng(seed)
    wall = start_ns + np.arange(n, dtype=np.int64) * step_ns
    series = np.arange(n, dtype=np.int64) % len(KEYS)
    outcome = np.full(n, int(Outcome.OK), dtype=np.int8)
    for at in rng.integers(0, n - 40, n // 400):
        outcome[at : at + rng.integers(1, 40)] = int(Outcome.TIMEOUT)
    outcome[rng.random(n) < 0.002] = int(Outcome.NXDOMAIN)
    for at in rng.integers(0, n - 200, 3):
        gone = np.arange(at, at + 200)
        outcome[gone[series[gone] == 3]] = int(Outcome.TARGET_GONE)
    failed = outcome == int(Outcome.TIMEOUT)
    answer = np.where(failed, rng.integers(-1, 4, n), 0).astype(np.int64)
    return ProbeBatch(
        keys=KEYS,
        series=series,
        wall_ns=wall,
        mono_ns=wall - 10**12 + rng.integers(0, 50, n),
        outcome=outcome,
        latency_ns=np.where(failed, -1, 300_000 + rng.integers(0, 1000, n)).astype(np.int64),
        answer=answer,
        answers=ANSWERS,
    )


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reading") / "s.sqlite"
    with Store(path, create=True) as store:
        runs = [store.begin_run("t", [], {}) for _ in range(2)]
    # the second run's blocks overlap the first's in time (some times equal)
    plan = ((10 * _S, 5_000_000, 1), (11 * _S, 2_500_000, 2))
    for run, (start, step, seed) in zip(runs, plan, strict=True):
        writer = StoreWriter(path, run)
        writer.put_batch(batch(start, 50_000, step, seed))
        writer.close()
    conn = sqlite3.connect(path)
    ((overlap,),) = conn.execute(
        "SELECT count(*) FROM probe_blocks a JOIN probe_blocks b"
        " ON a.run < b.run AND b.t_start <= a.t_end AND a.t_start <= b.t_end"
    )
    assert overlap > 0  # the reads must sort: stored order is not time order
    (sid,) = conn.execute("SELECT min(id) FROM series").fetchone()
    rows = [  # not compacted yet: rows of both runs, among the blocks' times
        (runs[k % 2], sid + k % 4, 12 * _S + k * 7_000_000, 5 * _S, o, -1, None)
        for k, o in enumerate([int(Outcome.OK), int(Outcome.TIMEOUT)] * 30)
    ]
    conn.executemany("INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path


SELECTIONS = [
    {},
    {"since_ns": 60 * _S + 1, "until_ns": 180 * _S + 3},  # cuts blocks of both runs
    {"runs": [2]},
]


def expected_groups(
    cols: ProbeColumns, group_of: dict[int, int], groups: int
) -> list[tuple[list[int], list[bool], list[int]]]:
    """Per group from the full columns: attempts' times and failures, and
    the times while gone."""
    g = np.asarray([group_of.get(int(s), -1) for s in cols.series.tolist()])
    gone = cols.gone
    return [
        (
            cols.wall_ns[(g == k) & ~gone].tolist(),
            cols.failed[(g == k) & ~gone].tolist(),
            cols.wall_ns[(g == k) & gone].tolist(),
        )
        for k in range(groups)
    ]


@pytest.mark.parametrize("sel", SELECTIONS)
def test_narrow_reads_match_the_full_read(store_path: Path, sel: dict) -> None:  # type: ignore[type-arg]
    with Store(store_path) as store:
        full = store.probe_columns(**sel)
        sourced = store.sourced_failures(**sel)
        series = store.series()
    assert len(full) > 1000 and bool(np.all(np.diff(full.wall_ns) >= 0))
    assert any(p.answer.startswith("from ") for p in sourced)
    assert {p.answer for p in sourced} <= {ANSWERS[1], ANSWERS[2]}
    # the groups leave a series out (c0's tcp probe): it counts in the totals only
    targets = ["host", "netns:c0", "netns:c1"]
    group_of = {
        sid: targets.index(s.target) for sid, s in series.items() if not s.probe.startswith("tcp")
    }
    for first in ("narrow", "groups", "sourced"):
        with Store(store_path) as store:
            if first == "narrow":
                narrow = store.probe_columns(**sel, columns=())
                for f in ("run", "series", "wall_ns", "outcome"):
                    assert getattr(narrow, f).tolist() == getattr(full, f).tolist(), f
                assert narrow.mono_ns.size == narrow.latency_ns.size == 0
                assert (
                    narrow.take(narrow.failed).wall_ns.tolist()
                    == full.wall_ns[full.failed].tolist()
                )
            if first in ("narrow", "groups"):
                got = store.probe_groups(group_of, len(targets), **sel)
                want = expected_groups(full, group_of, len(targets))
                for k, (wall, failed, gone) in enumerate(want):
                    rows = slice(got.bounds[k], got.bounds[k + 1])
                    assert got.wall_ns[rows].tolist() == wall
                    assert got.failed[rows].tolist() == failed
                    assert got.gone_ns[k].tolist() == gone
                kept = ~full.gone
                assert got.attempts == int(kept.sum())
                assert got.failures == int(full.failed.sum())
                assert (got.first_ns, got.last_ns) == (
                    int(full.wall_ns[kept][0]),
                    int(full.wall_ns[kept][-1]),
                )
                assert got.runs == set(full.run.tolist())
                per_series = np.bincount(full.series[kept], minlength=got.series_attempts.size)
                assert got.series_attempts.tolist() == per_series.tolist()
            assert store.sourced_failures(**sel) == sourced


def test_analyze_reads_grouped_and_gives_the_analysis_of_the_columns(store_path: Path) -> None:
    for sel in SELECTIONS:
        with Store(store_path) as store:
            got = analyze(store, **sel)
        with Store(store_path) as store:
            cols = store.probe_columns(**sel)
            want = analyze_data(
                cols,
                store.series(),
                store.events(**sel),
                store.facts(),
                source=str(store.path),
                runs=tuple(sel.get("runs") or sorted(set(cols.run.tolist()))),
                sourced=store.sourced_failures(**sel),
            )
        assert got.probes == want.probes and got.failed == want.failed
        assert got.episodes and got.episodes == want.episodes
        assert got == want


def test_unknown_columns_are_refused(store_path: Path) -> None:
    with Store(store_path) as store, pytest.raises(ValueError, match="answer"):
        store.probe_columns(columns=("answer",))
