"""Outage episodes: failed probe attempts of one target grouped into outages.

The rule, per target (all series of a target merged, in wall-clock order):

1. A *failure run* is a maximal sequence of failed attempts with no
   successful attempt of that target between them. Time without attempts
   (a stalled prober, a target that was gone) does not end a run: an outage
   is only over when something got through.
2. With ``max_gap_ns`` set, consecutive failure runs are merged into one
   episode when the last failure of one and the first failure of the next are
   at most ``max_gap_ns`` apart, even though successes lie between them (a
   flapping path counts as one outage). With ``None`` (the default) nothing is
   merged: a single success ends an episode.

``start_ns``/``end_ns`` are the wall-clock times of the first and last failed
attempt, ``recovered_ns`` that of the first attempt after it (a success;
None when the target was still failing at the end of the data); ``attempts``
counts every attempt of the target from the first to the last failure (so
``attempts - failed`` successes were tolerated inside it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from netsleuth.store import ProbeColumns, Series

__all__ = ["ByTarget", "Episode", "by_target", "find_episodes", "group_episodes", "target_index"]


@dataclass(frozen=True, slots=True)
class Episode:
    """One outage of one target."""

    target: str
    start_ns: int
    end_ns: int
    failed: int
    attempts: int
    recovered_ns: int | None = None
    """The first successful attempt after it (None: still failing at the end)."""

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last failed attempt (0 for a single failure)."""
        return (self.end_ns - self.start_ns) / 1e9


_Index = npt.NDArray[np.signedinteger[Any]]


def _index_type(n: int) -> type[np.signedinteger[Any]]:
    """The narrowest signed type that holds ``-1 ... n - 1``."""
    for dtype in (np.int8, np.int16, np.int32):
        if n <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def target_index(cols: ProbeColumns, series: dict[int, Series]) -> tuple[list[str], _Index]:
    """Sorted target names, and for every attempt the index of its target in
    them (in the narrowest type that holds it: one byte for up to 127 targets).

    Attempts of series unknown to ``series`` get the index -1.
    """
    targets = sorted({s.target for s in series.values()})
    pos = {t: i for i, t in enumerate(targets)}
    dtype = _index_type(len(targets))
    if len(cols) == 0 or not series:
        return targets, np.full(len(cols), -1, dtype=dtype)
    max_id = max(int(cols.series.max()), *series)
    lut = np.full(max_id + 1, -1, dtype=dtype)
    for sid, s in series.items():
        lut[sid] = pos[s.target]
    return targets, lut[cols.series]


@dataclass(frozen=True, slots=True)
class ByTarget:
    """The attempts grouped by target, each target's in time order: target
    ``t`` has rows ``bounds[t]:bounds[t + 1]`` of ``wall_ns`` and ``failed``
    (made once, then every step of the analysis slices it without copying)."""

    targets: list[str]
    bounds: list[int]
    wall_ns: npt.NDArray[np.int64]
    failed: npt.NDArray[np.bool_]

    def rows(self, t: int) -> slice:
        return slice(self.bounds[t], self.bounds[t + 1])


CHUNK_ROWS = 1 << 18
"""Attempts per step of the grouping by target."""
FEW_TARGETS = 32
"""Up to this many targets are grouped by one pass each, more by one sort."""


def by_target(
    cols: ProbeColumns,
    series: dict[int, Series],
    *,
    tidx: _Index | None = None,
) -> ByTarget:
    """Group ``cols`` (sorted by ``wall_ns``) by target: a stable partition
    (``tidx``: :func:`target_index` of ``cols``, when known).

    With few targets, each is one pass over the one-byte target column that
    copies its attempts straight into their place (no index array of every
    attempt: at tens of millions of attempts the memory itself costs more
    than the passes); with many, one stable (radix) sort of that column."""
    targets = sorted({s.target for s in series.values()})
    if tidx is None:
        tidx = target_index(cols, series)[1]
    failed_all = cols.failed
    if len(targets) > FEW_TARGETS:
        order = np.argsort(tidx, kind="stable")
        counts = np.bincount(tidx + 1, minlength=len(targets) + 1)
        order = order[int(counts[0]) :]  # unknown series (-1) sort first: left out
        bounds = np.cumsum([0, *counts[1:].tolist()]).tolist()
        return ByTarget(targets, bounds, cols.wall_ns[order], failed_all[order])
    n = len(targets)
    chunks = range(0, tidx.size, CHUNK_ROWS)
    sizes = [0] * n
    for k in chunks:
        part = tidx[k : k + CHUNK_ROWS]
        for t in range(n):
            sizes[t] += int(np.count_nonzero(part == t))
    bounds = np.cumsum([0, *sizes]).tolist()
    wall = np.empty(bounds[-1], dtype=np.int64)
    failed = np.empty(bounds[-1], dtype=np.bool_)
    at = bounds[:-1]  # where each target's next attempts go
    for k in chunks:  # a chunk at a time, so it stays in the cache for every target
        part, part_wall = tidx[k : k + CHUNK_ROWS], cols.wall_ns[k : k + CHUNK_ROWS]
        part_failed = failed_all[k : k + CHUNK_ROWS]
        for t in range(n):
            mask = part == t
            m = int(np.count_nonzero(mask))
            np.compress(mask, part_wall, out=wall[at[t] : at[t] + m])
            np.compress(mask, part_failed, out=failed[at[t] : at[t] + m])
            at[t] += m
    return ByTarget(targets, bounds, wall, failed)


def find_episodes(
    cols: ProbeColumns,
    series: dict[int, Series],
    *,
    max_gap_ns: int | None = None,
    grouped: ByTarget | None = None,
) -> list[Episode]:
    """Group failed attempts into episodes per target (see the module docstring).

    ``cols`` must be sorted by ``wall_ns`` (as :meth:`Store.probe_columns`
    returns them). The result is sorted by start time, then target.
    ``grouped``: the columns already grouped by :func:`by_target`.
    """
    return group_episodes(
        grouped if grouped is not None else by_target(cols, series), max_gap_ns=max_gap_ns
    )


def group_episodes(g: ByTarget, *, max_gap_ns: int | None = None) -> list[Episode]:
    """:func:`find_episodes` of attempts grouped by target."""
    if max_gap_ns is not None and max_gap_ns < 0:
        raise ValueError("max_gap_ns must not be negative")
    episodes: list[Episode] = []
    for t, name in enumerate(g.targets):
        rows = g.rows(t)
        failed = g.failed[rows]
        pos = np.flatnonzero(failed)  # positions of failures among this target's attempts
        if pos.size == 0:
            continue
        all_wall = g.wall_ns[rows]
        wall = all_wall[pos]
        # A new episode starts where a success lies between two failures ...
        breaks = np.diff(pos) > 1
        if max_gap_ns is not None:
            # ... unless the failures on either side are close enough to merge.
            breaks &= np.diff(wall) > max_gap_ns
        starts = np.concatenate(([0], np.flatnonzero(breaks) + 1))
        ends = np.concatenate((starts[1:] - 1, [pos.size - 1]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            episodes.append(
                Episode(
                    target=name,
                    start_ns=int(wall[s]),
                    end_ns=int(wall[e]),
                    failed=e - s + 1,
                    attempts=int(pos[e] - pos[s] + 1),
                    recovered_ns=int(all_wall[pos[e] + 1]) if pos[e] + 1 < all_wall.size else None,
                )
            )
    episodes.sort(key=lambda ep: (ep.start_ns, ep.target))
    return episodes
