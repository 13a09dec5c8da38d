"""Statistics that need no scipy, cheap enough for the live view of ``watch``
(:mod:`netsleuth.analysis.stats` holds the tests that need scipy)."""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = ["wilson"]


def wilson(failed: int, attempts: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval of a failure rate; (0, 1) without attempts.

    Newcombe's (1998) form, the one ``scipy.stats.binomtest(...).proportion_ci(
    method="wilson")`` computes: the bound at 0 failures (or all) is exactly 0 (or 1).
    """
    if attempts <= 0:
        return 0.0, 1.0
    if not 0 <= failed <= attempts:
        raise ValueError(f"{failed} failures out of {attempts} attempts")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = failed / attempts
    denom = 2 * (attempts + z * z)
    center = (2 * attempts * p + z * z) / denom
    delta = z / denom * math.sqrt(4 * attempts * p * (1 - p) + z * z)
    low = 0.0 if failed == 0 else center - delta
    high = 1.0 if failed == attempts else center + delta
    return low, high
