"""Bounded under a drop storm, and never losing the count.

Per key (reason, location, namespace, device) and per window (1 s): the
first ``rate`` drops pass one by one, with their headers (what links a drop
to a probe); beyond that, and beyond ``total_rate`` drops of all keys in the
window, a drop only adds to its key's aggregate, one :class:`~.record.Drop`
with ``count`` = how many, emitted once its window has ended. Whatever goes
in comes out, as single drops or in an aggregate: the counts add up.

Pure (the caller gives the times); the bpftrace program applies the same
budget in the kernel, so that a storm costs it a map increment per packet
rather than a line of output.
"""

from __future__ import annotations

from dataclasses import dataclass

from netsleuth.drops.record import Drop, DropKey

__all__ = ["Limiter"]


@dataclass(slots=True)
class _Pending:
    window: int
    passed: int = 0
    count: int = 0
    last: Drop | None = None  # the latest drop of the aggregate (its time and key)


class Limiter:
    def __init__(
        self, rate: int = 100, total_rate: int = 2000, window_ns: int = 1_000_000_000
    ) -> None:
        if rate < 0 or total_rate < 0 or window_ns <= 0:
            raise ValueError("rates must be >= 0 and the window > 0")
        self.rate = rate
        self.total_rate = total_rate
        self.window_ns = window_ns
        self._keys: dict[DropKey, _Pending] = {}
        self._window = -1
        self._passed = 0  # drops passed one by one in the current window, all keys
        self._ready: list[Drop] = []
        self.seen = 0
        """Drops offered, counting each aggregate's ``count``."""
        self.aggregated = 0
        """Of those, how many went into an aggregate."""

    def offer(self, drop: Drop) -> Drop | None:
        """The drop itself if it passes, else None (it is in an aggregate)."""
        window = drop.mono_ns // self.window_ns
        self.seen += drop.count
        if window > self._window:
            self._window, self._passed = window, 0
        state = self._keys.get(drop.key)
        if state is None or window > state.window:
            if state is not None and state.count:
                self._emit(state)
            state = self._keys[drop.key] = _Pending(window)
        if (
            drop.count == 1
            and state.passed < self.rate
            and self._passed < self.total_rate
            and window >= self._window
        ):
            state.passed += 1
            self._passed += 1
            return drop
        state.count += drop.count
        self.aggregated += drop.count
        if state.last is None or drop.mono_ns >= state.last.mono_ns:
            state.last = drop
        return None

    def flush(self, now_ns: int | None = None) -> list[Drop]:
        """The aggregates of every window that has ended by ``now_ns``
        (None: all of them, e.g. at the end)."""
        window = None if now_ns is None else now_ns // self.window_ns
        for key, state in list(self._keys.items()):
            if window is None or state.window < window:
                if state.count:
                    self._emit(state)
                del self._keys[key]
        out, self._ready = self._ready, []
        return out

    def _emit(self, state: _Pending) -> None:
        assert state.last is not None
        self._ready.append(state.last.aggregate(state.count))
        state.count = 0
