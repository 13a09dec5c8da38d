"""State evidence: do outages begin and end with a state a mechanism predicts?

``watch`` stores when each target entered and left a state
(:class:`~netsleuth.model.StateKind`: its gateway entry holding a MAC the
bridge no longer has, the NAT rule for its subnet missing, a link on its
path down, ...). An outage whose start *and* end line up with the start and
end of such an interval is strong evidence: outages that have nothing to do
with the state would have to begin within a probe interval or two of its
start and, by a second coincidence, end within the same margin of its end.

The unit is an outage (or an interval), never a single probe: consecutive
probes are not independent. Of the outages of several targets that begin
within two probe intervals of each other only one counts, as in the onset
correlation, so one event seen from many containers is one observation.

Chance of an alignment (the null hypothesis: outages come and go
independently of the state). For an outage of target X whose first failed
probe is at ``s``, whose last is at ``e`` and whose first success after it is
at ``r``, and an interval ``[a, b]`` of X's state in a record of length ``T``:

- its start lines up when ``-tol <= s - a <= w`` (``w`` two probe intervals
  plus the time-stamp tolerance ``tol``): by chance with probability at most
  ``(w + tol) / T``;
- its end lines up when ``b`` falls between ``e - tol`` and ``r + w`` (a state's
  end is stamped when it is seen, which can lag the change as its start can):
  given the start, by chance at most ``u / (T_end - a)`` with ``u = r - e + tol + w``
  (the end must fall somewhere after the start, within the record).

Summed over the intervals of X's state, that is the chance ``q`` that one
outage lines up by accident. An interval still open at the end of the record
lines up with an outage still going on then when their starts do
(probability ``(w + tol) / T``). With ``K`` outages of which ``k`` line up,
the p-value is the binomial tail ``P(Bin(K, q_max) >= k)`` (conservative:
the largest ``q`` of all outages), multiplied by the number of state families
tested (Bonferroni).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from netsleuth.analysis.correlate import TIMESTAMP_TOLERANCE_NS
from netsleuth.analysis.episodes import Episode
from netsleuth.analysis.exact import binom_sf
from netsleuth.model import EventKind, NetEvent, StateChange, StateKind

__all__ = [
    "Alignment",
    "StateEvidence",
    "StateInterval",
    "align",
    "chance_of_alignment",
    "state_intervals",
]

OPEN = 2**63 - 1


@dataclass(frozen=True, slots=True)
class StateInterval:
    """One stretch of time a target spent in a state (``end_ns`` None: still
    in it at the end of the record)."""

    target: str
    state: StateKind
    start_ns: int
    end_ns: int | None
    change: StateChange

    @property
    def bridge(self) -> str:
        return self.change.bridge


@dataclass(frozen=True, slots=True)
class Alignment:
    """An outage whose start (and end, unless both are still open) lines up
    with an interval's."""

    episode: Episode
    interval: StateInterval
    start_offset_ms: float  # outage start minus state start
    end_offset_ms: float | None  # state end minus the outage's last failed probe


@dataclass(frozen=True, slots=True)
class StateEvidence:
    """How one family of states (the states one cause predicts) lines up with
    the outages of the targets that could be in them."""

    family: str
    states: tuple[StateKind, ...]
    intervals: tuple[StateInterval, ...]
    outages: int  # independent outages of the targets watched for these states
    aligned: tuple[Alignment, ...]  # one per independent outage
    inside: int  # outages that lie within an interval without lining up
    quiet: int  # intervals during which probes ran and none failed
    unexplained: int  # outages of those targets that lie in no interval
    chance: float  # the largest per-outage chance of an accidental alignment
    p_value: float  # corrected for the families tested
    families_tested: int
    explained: frozenset[tuple[str, int]] = frozenset()
    """(target, start_ns) of every outage that lines up with or lies in an interval."""


def state_intervals(events: Iterable[NetEvent]) -> list[StateInterval]:
    """The intervals of every target's states, from ``state-entered`` /
    ``state-left`` events in time order (unmatched ends are ignored)."""
    open_: dict[tuple[str, StateKind], tuple[int, StateChange]] = {}
    out: list[StateInterval] = []
    for ev in events:
        if ev.kind not in (EventKind.STATE_ENTERED, EventKind.STATE_LEFT):
            continue
        change = ev.detail
        if not isinstance(change, StateChange):
            continue  # a state this version does not know
        key = (ev.netns, change.state)
        if ev.kind is EventKind.STATE_ENTERED:
            if key in open_:
                start, old = open_.pop(key)
                out.append(StateInterval(ev.netns, change.state, start, ev.wall_ns, old))
            open_[key] = (ev.wall_ns, change)
        elif key in open_:
            start, old = open_.pop(key)
            out.append(StateInterval(ev.netns, change.state, start, ev.wall_ns, old))
    out.extend(StateInterval(t, s, start, None, c) for (t, s), (start, c) in open_.items())
    out.sort(key=lambda i: (i.start_ns, i.target, i.state))
    return out


def _merge(intervals: Sequence[StateInterval], gap_ns: int) -> list[StateInterval]:
    """Join intervals of one target that touch (one state handing over to a
    sibling of the same family, e.g. gone -> another port's MAC, or a detail
    changing: a port leaving as its bridge is deleted). The joined interval
    keeps what was seen in its longest part."""
    merged: list[StateInterval] = []
    longest: list[int] = []
    for iv in sorted(intervals, key=lambda i: i.start_ns):
        length = OPEN if iv.end_ns is None else iv.end_ns - iv.start_ns
        last = merged[-1] if merged else None
        if last is not None and last.end_ns is None:
            continue  # inside an interval that never ends
        if last is not None and last.end_ns is not None and iv.start_ns - last.end_ns <= gap_ns:
            end = None if iv.end_ns is None else max(iv.end_ns, last.end_ns)
            change = iv.change if length > longest[-1] else last.change
            state = iv.state if length > longest[-1] else last.state
            longest[-1] = max(longest[-1], length)
            merged[-1] = StateInterval(last.target, state, last.start_ns, end, change)
        else:
            merged.append(iv)
            longest.append(length)
    return merged


def chance_of_alignment(
    intervals: Sequence[StateInterval],
    episode: Episode,
    *,
    window_ns: int,
    record: tuple[int, int],
) -> float:
    """The chance that ``episode`` lines up with one of ``intervals`` by
    accident (see the module docstring)."""
    t0, t1 = record
    span = max(1, t1 - t0)
    tol = TIMESTAMP_TOLERANCE_NS
    p_start = min(1.0, (window_ns + tol) / span)
    q = 0.0
    for iv in intervals:
        if iv.end_ns is None:
            q += p_start if episode.recovered_ns is None else 0.0
            continue
        recovered = episode.recovered_ns if episode.recovered_ns is not None else t1
        u = recovered - episode.end_ns + tol + window_ns
        q += p_start * min(1.0, u / max(u, t1 - iv.start_ns))
    return min(1.0, q)


def _lines_up(
    ep: Episode, iv: StateInterval, window_ns: int, target_end_ns: int
) -> Alignment | None:
    """Does ``ep`` begin with ``iv`` and end with it? An outage that lasts
    until its target's last attempt (the target ended, or the record did)
    ends with an interval that is still open, or that closed when the target
    went away (within a window of its last attempt)."""
    tol = TIMESTAMP_TOLERANCE_NS
    ds = ep.start_ns - iv.start_ns
    if not -tol <= ds <= window_ns:
        return None
    if iv.end_ns is None:
        if ep.recovered_ns is not None:
            return None
        return Alignment(ep, iv, ds / 1e6, None)
    bound = ep.recovered_ns if ep.recovered_ns is not None else target_end_ns + 2 * window_ns
    # the state's end is stamped when it was seen, which can lag the change
    # (a busy host, a monitor's pipe) as its start can: allow the same window
    if not ep.end_ns - tol <= iv.end_ns <= bound + window_ns:
        return None
    return Alignment(ep, iv, ds / 1e6, (iv.end_ns - ep.end_ns) / 1e6)


def _independent(episodes: Sequence[Episode], within_ns: int) -> list[list[Episode]]:
    """Outages grouped where they begin within ``within_ns`` of the group's first."""
    groups: list[list[Episode]] = []
    for ep in sorted(episodes, key=lambda e: (e.start_ns, e.target)):
        if groups and ep.start_ns - groups[-1][0].start_ns <= within_ns:
            groups[-1].append(ep)
        else:
            groups.append([ep])
    return groups


def align(
    families: Mapping[str, tuple[StateKind, ...]],
    intervals: Sequence[StateInterval],
    episodes: Sequence[Episode],
    *,
    probe_interval_ns: int,
    records: Mapping[str, tuple[int, int]],
    attempts: Mapping[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]] | None = None,
) -> dict[str, StateEvidence]:
    """State evidence per family (``family -> the states it joins``) for the
    families with at least one interval. ``records``: each target's first and
    last attempt; ``attempts``: per target its attempts' wall_ns and failed
    flags in time order, to find intervals that saw probes and no failure."""
    window = 2 * probe_interval_ns + TIMESTAMP_TOLERANCE_NS
    by_family: dict[str, dict[str, list[StateInterval]]] = {}
    for name, kinds in families.items():
        per_target: dict[str, list[StateInterval]] = defaultdict(list)
        for iv in intervals:
            if iv.state in kinds:
                per_target[iv.target].append(iv)
        if per_target:
            by_family[name] = {t: _merge(ivs, window) for t, ivs in per_target.items()}
    tested = len(by_family)
    out: dict[str, StateEvidence] = {}
    for name, per_target in by_family.items():
        eps = [e for e in episodes if e.target in records]
        groups = _independent(eps, 2 * probe_interval_ns)
        aligned: list[Alignment] = []
        q_max = 0.0
        inside = unexplained = 0
        explained: set[tuple[str, int]] = set()
        for group in groups:
            found: Alignment | None = None
            within = False
            for ep in group:
                ivs = per_target.get(ep.target, [])
                q_max = max(
                    q_max,
                    chance_of_alignment(
                        ivs, ep, window_ns=window, record=records.get(ep.target, (0, 1))
                    ),
                )
                for iv in ivs:
                    hit = _lines_up(ep, iv, window, records.get(ep.target, (0, 0))[1])
                    if hit is not None:
                        found = found or hit
                    end = OPEN if iv.end_ns is None else iv.end_ns
                    if (
                        hit is not None
                        or iv.start_ns - TIMESTAMP_TOLERANCE_NS <= ep.start_ns <= end
                    ):
                        within = True
                        explained.add((ep.target, ep.start_ns))
            if found is not None:
                aligned.append(found)
            elif within:
                inside += 1
            else:
                unexplained += 1
        k, n = len(aligned), len(groups)
        p = binom_sf(k, n, q_max) if k else 1.0
        quiet = _quiet(per_target, attempts or {}, window)
        out[name] = StateEvidence(
            family=name,
            states=families[name],
            intervals=tuple(iv for ivs in per_target.values() for iv in ivs),
            outages=n,
            aligned=tuple(aligned),
            inside=inside,
            quiet=quiet,
            unexplained=unexplained,
            chance=q_max,
            p_value=min(1.0, p * tested),
            families_tested=tested,
            explained=frozenset(explained),
        )
    return out


def _quiet(
    per_target: Mapping[str, Sequence[StateInterval]],
    attempts: Mapping[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]],
    window_ns: int,
) -> int:
    """Intervals with at least two attempts well inside them, none failed."""
    quiet = 0
    for target, ivs in per_target.items():
        if target not in attempts:
            continue
        times, failed = attempts[target]
        for iv in ivs:
            lo = int(np.searchsorted(times, iv.start_ns + window_ns, side="left"))
            end = OPEN if iv.end_ns is None else iv.end_ns
            hi = int(np.searchsorted(times, end - window_ns, side="right"))
            if hi - lo >= 2 and not failed[lo:hi].any():
                quiet += 1
    return quiet
