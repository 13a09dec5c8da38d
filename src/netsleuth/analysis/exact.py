"""Exact tails of the binomial and hypergeometric distributions, without scipy.

Importing ``scipy.stats`` takes seconds, longer than a report of one hour
needs for everything else, and the analysis uses only three of its numbers:
the binomial tail ``P(X >= k)``, the one-sided Fisher exact test (a
hypergeometric tail) and the exact (Clopper-Pearson) upper bound of a rate.
These are computed here to the precision of scipy's (boost's) own:

- one probability of the distribution (its mass at a point) comes from
  Loader's saddle-point form, ``stirlerr`` and the deviance ``bd0`` (as R's
  ``dbinom``/``dhyper`` compute it), in logarithms: accurate to about 1e-15
  relative even for millions of attempts, where ``lgamma`` differences lose
  half the digits, and without underflow for p-values far below 1e-300;
- a tail is that mass times a sum of the ratios of neighbouring masses, run
  from the point away from the mode (the terms shrink there, so the sum
  stops once the rest, bounded by a geometric series, cannot change it);
  a tail that holds the mode is one minus the other tail.

The cost is the number of terms until they vanish (a few standard
deviations), not the population: a table of 35 million attempts with a few
hundred onsets takes microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["binom_cdf", "binom_sf", "fisher_greater_p", "hypergeom_sf", "rate_upper"]

_LN_2PI = math.log(2.0 * math.pi)
_LN_SQRT_2PI = 0.5 * _LN_2PI
_EPS = 2.0**-60
"""The sum stops when what is left is below this share of it."""


def _stirlerr(n: float) -> float:
    """``log(n!) - log(sqrt(2 pi n) (n/e)^n)``, the error of Stirling's formula."""
    if n <= 15.0:
        return math.lgamma(n + 1.0) - (n + 0.5) * math.log(n) + n - _LN_SQRT_2PI
    nn = n * n
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _bd0(x: float, np_: float) -> float:
    """The deviance ``x log(x/np) + np - x``, without cancellation near ``x = np``."""
    if abs(x - np_) < 0.1 * (x + np_):
        v = (x - np_) / (x + np_)
        s = (x - np_) * v
        ej = 2.0 * x * v
        v *= v
        for j in range(1, 1000):
            ej *= v
            s1 = s + ej / (2 * j + 1)
            if s1 == s:
                return s1
            s = s1
        return s
    return x * math.log(x / np_) + np_ - x


def _log_dbinom(x: int, n: int, p: float, q: float) -> float:
    """``log P(X = x)`` for ``X ~ Bin(n, p)``, ``q = 1 - p`` given separately."""
    if x < 0 or x > n:
        return -math.inf
    if p == 0.0:
        return 0.0 if x == 0 else -math.inf
    if q == 0.0:
        return 0.0 if x == n else -math.inf
    if x == 0:
        if n == 0:
            return 0.0
        return -_bd0(n, n * q) - n * p if p < 0.1 else n * math.log(q)
    if x == n:
        return -_bd0(n, n * p) - n * q if q < 0.1 else n * math.log(p)
    lc = _stirlerr(n) - _stirlerr(x) - _stirlerr(n - x) - _bd0(x, n * p) - _bd0(n - x, n * q)
    lf = _LN_2PI + math.log(x) + math.log1p(-x / n)
    return lc - 0.5 * lf


def _log_dhyper(x: int, total: int, good: int, drawn: int) -> float:
    """``log P(X = x)``: ``x`` of ``good`` marked items among ``drawn`` of ``total``."""
    bad = total - good
    if x < 0 or x > good or x > drawn or drawn - x > bad:
        return -math.inf
    if drawn in (0, total):
        return 0.0
    p = drawn / total
    q = (total - drawn) / total
    return (
        _log_dbinom(x, good, p, q)
        + _log_dbinom(drawn - x, bad, p, q)
        - _log_dbinom(drawn, total, p, q)
    )


def _run(first: float, ratio: Callable[[int], float], start: int, stop: int, step: int) -> float:
    """``exp(first) * (1 + r(start) + r(start) r(start+step) + ...)`` up to
    ``stop`` (inclusive): a tail from ``start``, whose terms shrink as it
    goes (the ratios fall), stopped where the rest cannot count."""
    if first == -math.inf:
        return 0.0
    total = term = 1.0
    x = start
    while x != stop:
        r = ratio(x)
        term *= r
        total += term
        x += step
        if r < 1.0 and term / (1.0 - r) < total * _EPS:
            break
        if term == 0.0:
            break
    return math.exp(first) * total


def hypergeom_sf(k: int, total: int, good: int, drawn: int) -> float:
    """``P(X >= k)``: at least ``k`` of ``good`` marked items among ``drawn``
    taken without replacement from ``total``."""
    bad = total - good
    lo, hi = max(0, drawn - bad), min(good, drawn)
    if k <= lo:
        return 1.0
    if k > hi:
        return 0.0
    mode = (drawn + 1) * (good + 1) // (total + 2)

    def up(x: int) -> float:  # P(x + 1) / P(x)
        return (good - x) * (drawn - x) / ((x + 1) * (bad - drawn + x + 1))

    def down(x: int) -> float:  # P(x - 1) / P(x)
        return x * (bad - drawn + x) / ((good - x + 1) * (drawn - x + 1))

    if k > mode:
        return min(1.0, _run(_log_dhyper(k, total, good, drawn), up, k, hi, 1))
    below = _run(_log_dhyper(k - 1, total, good, drawn), down, k - 1, lo, -1)
    return min(1.0, max(0.0, 1.0 - below))


def binom_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Bin(n, p)`` (scipy's ``binom.sf(k - 1, n, p)``)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    q = 1.0 - p
    odds = p / q
    mode = math.floor((n + 1) * p)

    def up(x: int) -> float:
        return (n - x) / (x + 1) * odds

    def down(x: int) -> float:
        return x / (n - x + 1) / odds

    if k > mode:
        return min(1.0, _run(_log_dbinom(k, n, p, q), up, k, n, 1))
    below = _run(_log_dbinom(k - 1, n, p, q), down, k - 1, 0, -1)
    return min(1.0, max(0.0, 1.0 - below))


def binom_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Bin(n, p)``."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    q = 1.0 - p
    if p <= 0.0:
        return 1.0
    if q <= 0.0:
        return 0.0
    mode = math.floor((n + 1) * p)
    odds = p / q
    if k < mode:
        return min(1.0, _run(_log_dbinom(k, n, p, q), lambda x: x / (n - x + 1) / odds, k, 0, -1))
    return min(1.0, max(0.0, 1.0 - binom_sf(k + 1, n, p)))


def fisher_greater_p(table: tuple[tuple[int, int], tuple[int, int]]) -> float:
    """One-sided Fisher exact p-value of a 2x2 table ``((a, b), (c, d))``: the
    chance of ``a`` or more hits in the first row given the margins (scipy's
    ``fisher_exact(table, alternative="greater").pvalue``; 1 when a row or a
    column is empty)."""
    (a, b), (c, d) = table
    if min(a, b, c, d) < 0:
        raise ValueError(f"negative count in {table}")
    if 0 in (a + b, c + d, a + c, b + d):
        return 1.0
    return hypergeom_sf(a, a + b + c + d, a + b, a + c)


def rate_upper(failed: int, attempts: int, confidence: float) -> float:
    """One-sided exact (Clopper-Pearson) upper bound of a rate: the ``p`` at
    which ``failed`` or fewer failures have chance ``1 - confidence``."""
    if attempts <= 0 or failed >= attempts:
        return 1.0
    alpha = 1.0 - confidence
    if failed == 0:
        return -math.expm1(math.log(alpha) / attempts)  # (1 - p)^n = alpha
    lo, hi = failed / attempts, 1.0
    for _ in range(200):  # bisection: the cdf falls as p grows
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if binom_cdf(failed, attempts, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi
