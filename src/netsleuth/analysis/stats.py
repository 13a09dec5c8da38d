"""Small statistical helpers (pure functions; the exact tails in
:mod:`netsleuth.analysis.exact`, so a report never imports scipy)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from netsleuth.analysis.exact import fisher_greater_p, rate_upper
from netsleuth.stats import wilson

__all__ = [
    "fisher_greater",
    "format_p",
    "holm",
    "p_phrase",
    "probes_to_see_one",
    "rate_upper_bound",
    "relative_risk",
    "wilson",
]


def rate_upper_bound(failed: int, attempts: int, confidence: float = 0.95) -> float:
    """One-sided exact (Clopper-Pearson) upper bound of a failure rate.

    With 0 failures in n attempts this is ``1 - (1 - confidence) ** (1 / n)``,
    about 3/n at 95 % (the "rule of three").
    """
    if attempts <= 0:
        return 1.0
    return rate_upper(failed, attempts, confidence)


def probes_to_see_one(rate: float) -> int:
    """Attempts needed to expect one failure at ``rate``."""
    return math.ceil(1.0 / rate) if rate > 0 else 0


def fisher_greater(exposed_hit: int, exposed_miss: int, other_hit: int, other_miss: int) -> float:
    """One-sided Fisher exact p-value that a hit is more likely when exposed."""
    if exposed_hit == 0:
        return 1.0
    return fisher_greater_p(((exposed_hit, exposed_miss), (other_hit, other_miss)))


def relative_risk(exposed_hit: int, exposed_n: int, other_hit: int, other_n: int) -> float:
    """P(hit | exposed) / P(hit | not exposed), with 0.5 added to every cell
    (Haldane-Anscombe) so it stays finite when a cell is empty."""
    p1 = (exposed_hit + 0.5) / (exposed_n + 1.0)
    p0 = (other_hit + 0.5) / (other_n + 1.0)
    return p1 / p0


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def format_p(p: float | None) -> str:
    """A p-value for people: two significant digits; one that underflowed to 0
    is shown as below the smallest double."""
    if p is None:
        return "-"
    return "< 1e-300" if p <= 0 else f"{p:.2g}"


def p_phrase(p: float) -> str:
    """``= 0.0012`` or ``< 1e-300``, to follow a "p"."""
    text = format_p(p)
    return text if text.startswith("<") else f"= {text}"
