"""What a report must say about a bounded store: the ranges it keeps only as
per-minute aggregates (failure rates and outage minutes per target, at
minute resolution) and what retention or the size cap removed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from netsleuth.model import Outcome
from netsleuth.store.sqlite import MINUTE_NS, Dropped, MinuteColumns, Series, Store

__all__ = ["dropped_note", "minute_notes", "store_notes"]


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%Y-%m-%d %H:%M")


def _longest_run(minutes: Sequence[int]) -> int:
    """The most consecutive minutes in a sorted list of minute starts."""
    best = run = 0
    prev = None
    for m in minutes:
        run = run + 1 if prev is not None and m - prev == MINUTE_NS else 1
        best = max(best, run)
        prev = m
    return best


def minute_notes(minutes: MinuteColumns, series: dict[int, Series]) -> list[str]:
    """One note for the aggregated part of the selection: per target, its
    attempts, failure rate and outage minutes (minutes with a failed attempt;
    the longest run of them is the longest outage at minute resolution)."""
    if len(minutes) == 0:
        return []
    failed_outcomes = [int(o) for o in Outcome if o.failed]
    gone = minutes.outcome == int(Outcome.TARGET_GONE)
    parts = []
    targets = sorted({series[int(s)].target for s in np.unique(minutes.series) if int(s) in series})
    for target in targets:
        ids = [sid for sid, s in series.items() if s.target == target]
        mine = np.isin(minutes.series, ids) & ~gone
        attempts = int(minutes.attempts[mine].sum())
        bad = mine & np.isin(minutes.outcome, failed_outcomes)
        failed = int(minutes.attempts[bad].sum())
        outage = np.unique(minutes.minute_ns[bad]).tolist()
        rate = 100 * failed / attempts if attempts else 0.0
        text = f"{target} {attempts} attempts, {rate:.2f} % failed"
        if outage:
            text += f", {len(outage)} minutes with failures (longest run {_longest_run(outage)})"
        parts.append(text)
    lo, hi = int(minutes.minute_ns.min()), int(minutes.minute_ns.max()) + MINUTE_NS
    return [
        f"From {_when(lo)} to {_when(hi)} the store keeps per-minute aggregates only (older "
        "than its retention window), counted apart from the figures above, at minute "
        "resolution: " + "; ".join(parts) + "."
    ]


def dropped_note(dropped: Sequence[Dropped]) -> list[str]:
    """One line for everything retention and the size cap removed."""
    if not dropped:
        return []
    parts = []
    for d in dropped:
        what = (
            "raw attempts kept as per-minute aggregates"
            if d.what == "raw probes"
            else f"{d.what} removed"
        )
        parts.append(
            f"{what} from {_when(d.since_ns)} to {_when(d.until_ns)} ({d.rows} rows, {d.reason})"
        )
    return ["The store was trimmed to stay bounded: " + "; ".join(parts) + "."]


def store_notes(
    store: Store,
    runs: Sequence[int] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> list[str]:
    """The notes of both kinds for a selection of ``store``."""
    return [
        *minute_notes(store.minutes(runs, since_ns, until_ns), store.series()),
        *dropped_note(store.dropped()),
    ]
