"""The fixed probe schedule: attempt k of a probe is due at
``start + k / rate``, shifted by a bounded random jitter that never
accumulates. The schedule never waits for an earlier attempt to finish."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Schedule"]


@dataclass(slots=True)
class Schedule:
    start_ns: int
    rate: float
    jitter: float = 0.1  # fraction of the interval, spread evenly around the slot
    rng: random.Random | None = None
    count: int = 0  # attempts handed out so far

    @property
    def interval_ns(self) -> float:
        return 1e9 / self.rate

    def slot_ns(self, k: int) -> int:
        """Due time of attempt ``k``."""
        offset = 0.0
        if self.jitter:
            rng = self.rng or random
            offset = (rng.random() - 0.5) * self.jitter * self.interval_ns
        return self.start_ns + int(k * self.interval_ns + offset)

    def next_due(self) -> int:
        due = self.slot_ns(self.count)
        self.count += 1
        return due
