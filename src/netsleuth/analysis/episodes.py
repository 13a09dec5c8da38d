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

import numpy as np
import numpy.typing as npt

from netsleuth.store import ProbeColumns, Series

__all__ = ["Episode", "find_episodes", "target_index"]


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


def target_index(
    cols: ProbeColumns, series: dict[int, Series]
) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Sorted target names, and for every attempt the index of its target in them.

    Attempts of series unknown to ``series`` get the index -1.
    """
    targets = sorted({s.target for s in series.values()})
    pos = {t: i for i, t in enumerate(targets)}
    if len(cols) == 0 or not series:
        return targets, np.full(len(cols), -1, dtype=np.int64)
    max_id = max(int(cols.series.max()), *series)
    lut = np.full(max_id + 1, -1, dtype=np.int64)
    for sid, s in series.items():
        lut[sid] = pos[s.target]
    return targets, lut[cols.series]


def find_episodes(
    cols: ProbeColumns, series: dict[int, Series], *, max_gap_ns: int | None = None
) -> list[Episode]:
    """Group failed attempts into episodes per target (see the module docstring).

    ``cols`` must be sorted by ``wall_ns`` (as :meth:`Store.probe_columns`
    returns them). The result is sorted by start time, then target.
    """
    if max_gap_ns is not None and max_gap_ns < 0:
        raise ValueError("max_gap_ns must not be negative")
    targets, tidx = target_index(cols, series)
    failed_all = cols.failed
    episodes: list[Episode] = []
    order = np.argsort(tidx, kind="stable")  # by target, time order kept inside
    bounds = np.searchsorted(tidx[order], np.arange(len(targets) + 1))
    for t, name in enumerate(targets):
        rows = order[bounds[t] : bounds[t + 1]]
        if rows.size == 0:
            continue
        failed = failed_all[rows]
        pos = np.flatnonzero(failed)  # positions of failures among this target's attempts
        if pos.size == 0:
            continue
        all_wall = cols.wall_ns[rows]
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
                    recovered_ns=int(all_wall[pos[e] + 1]) if pos[e] + 1 < rows.size else None,
                )
            )
    episodes.sort(key=lambda ep: (ep.start_ns, ep.target))
    return episodes
