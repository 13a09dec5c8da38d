"""Kernel counters as events: what rose since the previous sample (pure).

A :class:`CounterDiff` keeps the last reading of one namespace and turns the
next one into a :class:`~netsleuth.model.CounterSample` of what rose, or
None when nothing did, so a quiet host writes nothing. A counter that went
down (the namespace was re-created, a module reloaded) starts over without a
delta. Gauges (:data:`~netsleuth.netns.counters.GAUGES`) are never
subtracted: ``ct.count``/``ct.max`` are kept beside a conntrack rise, and on
their own when the table is at least :data:`PRESSURE` full (then at most every
:data:`PRESSURE_EVERY` samples, unless the level moved by a percent of the
maximum).
"""

from __future__ import annotations

from collections.abc import Mapping

from netsleuth.model import CounterSample

__all__ = ["PRESSURE", "PRESSURE_EVERY", "CounterDiff"]

PRESSURE = 0.9
"""``ct.count / ct.max`` from which the level is written without a rise."""

PRESSURE_EVERY = 10
"""Samples between two writes of an unchanged high level."""

_GAUGES = frozenset({"ct.count", "ct.max", "arp.entries"})


class CounterDiff:
    def __init__(self) -> None:
        self._last: dict[str, int] | None = None
        self._since_level = PRESSURE_EVERY
        self._last_level = -1

    def update(self, now: Mapping[str, int], seconds: float) -> CounterSample | None:
        last, self._last = self._last, dict(now)
        if last is None:
            return None
        deltas = {k: v - last[k] for k, v in now.items() if k not in _GAUGES and v > last.get(k, v)}
        levels: dict[str, int] = {}
        count, limit = now.get("ct.count"), now.get("ct.max")
        self._since_level += 1
        if count is not None and limit:
            moved = abs(count - self._last_level) >= limit / 100
            pressed = count >= PRESSURE * limit and (moved or self._since_level >= PRESSURE_EVERY)
            if pressed or any(k.startswith("ct.") for k in deltas):
                levels = {"ct.count": count, "ct.max": limit}
                self._since_level, self._last_level = 0, count
        if any(k.startswith("arp.") for k in deltas) and "arp.entries" in now:
            levels["arp.entries"] = now["arp.entries"]
        if not deltas and not levels:
            return None
        return CounterSample(seconds, deltas, levels)
