"""Episode grouping on hand-built probe columns (pure logic, no root)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netsleuth.analysis import Episode, find_episodes
from netsleuth.model import Outcome
from netsleuth.store import ProbeColumns, Series

S = 1_000_000_000
OK, TO = int(Outcome.OK), int(Outcome.TIMEOUT)


def columns(rows: list[tuple[int, int, int]]) -> ProbeColumns:
    """rows: (series id, wall_ns, outcome)."""
    rows = sorted(rows, key=lambda r: r[1])
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    n = len(rows)
    return ProbeColumns(
        run=np.ones(n, dtype=np.int64),
        series=arr[:, 0].copy(),
        wall_ns=arr[:, 1].copy(),
        mono_ns=arr[:, 1].copy(),
        outcome=arr[:, 2].astype(np.int8),
        latency_ns=np.full(n, -1, dtype=np.int64),
    )


SERIES = {
    1: Series(1, "netns:a", "dns:198.18.255.2/www.lab.test/A", "198.18.255.2"),
    2: Series(2, "host", "dns:198.18.255.2/www.lab.test/A", "198.18.255.2"),
    3: Series(3, "netns:a", "dns:198.18.255.3/www.lab.test/A", "198.18.255.3"),
}


def seq(sid: int, outcomes: str, t0: int = 0, step: int = S // 10) -> list[tuple[int, int, int]]:
    return [(sid, t0 + i * step, OK if c == "." else TO) for i, c in enumerate(outcomes)]


def test_consecutive_failures_form_one_episode_and_a_success_ends_it() -> None:
    cols = columns(seq(1, "..xxx..x.."))
    eps = find_episodes(cols, SERIES)
    assert eps == [
        Episode("netns:a", 2 * S // 10, 4 * S // 10, 3, 3, recovered_ns=5 * S // 10),
        Episode("netns:a", 7 * S // 10, 7 * S // 10, 1, 1, recovered_ns=8 * S // 10),
    ]
    assert eps[0].duration_s == pytest.approx(0.2)
    assert eps[1].duration_s == 0.0


def test_missing_attempts_do_not_split_an_episode() -> None:
    rows = seq(1, "xx") + seq(1, "xx.", t0=60 * S)
    (ep,) = find_episodes(columns(rows), SERIES)
    assert (ep.failed, ep.attempts) == (4, 4)
    assert ep.end_ns - ep.start_ns == 60 * S + S // 10


def test_max_gap_merges_runs_across_short_successes_only() -> None:
    cols = columns(seq(1, "xx.xx" + "." * 30 + "x"))
    eps = find_episodes(cols, SERIES, max_gap_ns=S // 5)
    assert [(e.failed, e.attempts) for e in eps] == [(4, 5), (1, 1)]
    assert len(find_episodes(cols, SERIES, max_gap_ns=0)) == 3
    assert len(find_episodes(cols, SERIES)) == 3


def test_series_of_one_target_are_merged_and_targets_kept_apart() -> None:
    # series 3 (same target) succeeds between failures of series 1: ends the episode.
    rows = [*seq(1, "xxxx", step=S), (3, S + S // 2, OK), *seq(2, ".xx.", step=S)]
    eps = find_episodes(columns(rows), SERIES)
    assert [(e.target, e.failed, e.attempts) for e in eps] == [
        ("netns:a", 2, 2),
        ("host", 2, 2),
        ("netns:a", 2, 2),
    ]
    assert [e.start_ns for e in eps] == sorted(e.start_ns for e in eps)


def test_nxdomain_is_not_a_failure_and_empty_input_gives_nothing() -> None:
    rows = [(1, i * S, int(Outcome.NXDOMAIN)) for i in range(5)]
    assert find_episodes(columns(rows), SERIES) == []
    assert find_episodes(columns([]), SERIES) == []
    with pytest.raises(ValueError):
        find_episodes(columns([]), SERIES, max_gap_ns=-1)


def reference_runs(outcomes: list[bool]) -> list[tuple[int, int]]:
    """(first index, failed count) of each run of failures, the obvious way."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, failed in enumerate([*outcomes, False]):
        if failed and start is None:
            start = i
        elif not failed and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


@given(
    st.lists(st.tuples(st.sampled_from([1, 2]), st.booleans()), max_size=200),
    st.integers(min_value=0, max_value=5),
)
def test_episodes_match_a_reference_and_account_for_every_failure(
    attempts: list[tuple[int, bool]], gap_steps: int
) -> None:
    rows = [(sid, i * S // 10, TO if failed else OK) for i, (sid, failed) in enumerate(attempts)]
    cols = columns(rows)
    eps = find_episodes(cols, SERIES)
    assert sum(e.failed for e in eps) == int(cols.failed.sum())
    for target, sid in (("netns:a", 1), ("host", 2)):
        mine = [a for a in attempts if a[0] == sid]
        ref = reference_runs([failed for _, failed in mine])
        got = [(e.failed, e.attempts) for e in eps if e.target == target]
        assert got == [(n, n) for _, n in ref]
    merged = find_episodes(cols, SERIES, max_gap_ns=gap_steps * S // 10)
    assert len(merged) <= len(eps)
    assert sum(e.failed for e in merged) == int(cols.failed.sum())
    assert all(e.attempts >= e.failed and e.end_ns >= e.start_ns for e in merged)
    assert [e.start_ns for e in merged] == sorted(e.start_ns for e in merged)


def test_an_outage_still_going_at_the_end_has_no_recovery() -> None:
    eps = find_episodes(columns(seq(1, "..xx")), SERIES)
    assert [(e.start_ns, e.recovered_ns) for e in eps] == [(2 * S // 10, None)]


def test_gone_attempts_are_neither_failures_nor_successes() -> None:
    gone = int(Outcome.TARGET_GONE)
    cols = columns([*seq(1, "..x"), (1, 3 * S // 10, gone), (1, 4 * S // 10, gone)])
    assert cols.failed.tolist() == [False, False, True, False, False]
    assert cols.gone.tolist() == [False, False, False, True, True]
