"""The exact tails (no scipy at run time) against scipy's, and the counted
form of the onset test against the one that keeps every attempt."""

from __future__ import annotations

import random
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from scipy.stats import binom, binomtest, fisher_exact

from netsleuth.analysis.correlate import AtRisk, Onsets, correlate, correlate_onsets
from netsleuth.analysis.engine import _others_counter
from netsleuth.analysis.exact import binom_cdf, binom_sf, fisher_greater_p, rate_upper
from netsleuth.model import EventKind, MacChange, NetEvent


def test_fisher_matches_scipy_on_small_and_large_tables() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n = rng.choice([3, 40, 2_000, 10**6])
        a, c = rng.randint(0, min(n, 300)), rng.randint(0, min(n, 300))
        b, d = rng.randint(0, n), rng.randint(0, n)
        want = float(fisher_exact([[a, b], [c, d]], alternative="greater").pvalue)
        got = fisher_greater_p(((a, b), (c, d)))
        # scipy loses digits on tables of millions (see the next test)
        assert got == pytest.approx(want, rel=1e-7, abs=1e-300), (a, b, c, d)


def test_fisher_is_exact_where_lgamma_would_lose_digits() -> None:
    a, b, c, d = 819, 14_798_938, 1_145, 25_574_701
    total, good, drawn = a + b + c + d, a + b, a + c
    # the tail as a fraction of integers: sum of C(good, x) C(bad, drawn - x) / C(total, drawn)
    num = sum(comb(good, x) * comb(total - good, drawn - x) for x in range(a, drawn + 1))
    exact = float(Fraction(num, comb(total, drawn)))
    assert fisher_greater_p(((a, b), (c, d))) == pytest.approx(exact, rel=1e-12)


def test_binomial_tails_match_scipy() -> None:
    rng = random.Random(3)
    for _ in range(400):
        n = rng.choice([1, 7, 60, 1_000, 100_000])
        k = rng.randint(0, n + 1)
        p = rng.choice([rng.random(), rng.random() * 1e-4, 0.5, 0.0, 1.0])
        assert binom_sf(k, n, p) == pytest.approx(float(binom.sf(k - 1, n, p)), rel=1e-10)
        assert binom_cdf(k, n, p) == pytest.approx(float(binom.cdf(k, n, p)), rel=1e-10)
    assert binom_sf(0, 5, 0.3) == 1.0 and binom_sf(6, 5, 0.3) == 0.0


def test_clopper_pearson_upper_bound_matches_scipy() -> None:
    for failed, attempts in [(0, 10), (0, 450_000), (3, 100), (30, 100_000), (99, 100)]:
        want = binomtest(failed, attempts, alternative="less").proportion_ci(
            confidence_level=0.95, method="exact"
        )
        # scipy solves to an absolute 2e-12
        assert rate_upper(failed, attempts, 0.95) == pytest.approx(want.high, abs=1e-11)
    assert rate_upper(5, 5, 0.95) == 1.0


def _mac(t: int) -> NetEvent:
    return NetEvent(
        t, t, "host", EventKind.MAC_CHANGED, "br0", "br0", MacChange("a", "b", "bridge")
    )


def test_counted_onsets_give_the_correlation_of_every_attempt() -> None:
    """The engine's counts (all attempts less failures and recoveries) give
    the same table as the at-risk attempts themselves."""
    rng = np.random.default_rng(11)
    step = 50_000_000
    at_risk, counted, events = [], [], []
    for name in ("host", "netns:a", "netns:b"):
        wall = np.arange(20_000, dtype=np.int64) * step + int(rng.integers(0, step))
        failed = rng.random(wall.size) < 0.002
        for start in rng.integers(0, wall.size - 40, 30):
            failed[start : start + int(rng.integers(1, 30))] = True
        prev = np.concatenate(([False], failed[:-1]))
        risk = ~prev
        at_risk.append(AtRisk(name, wall[risk], (failed & risk)[risk]))
        fails = np.flatnonzero(failed)
        after = fails + 1
        after = after[after < wall.size]
        recovered = after[~failed[after]]
        others = int(wall.size - fails.size - recovered.size)
        count = _others_counter(wall, wall[fails], wall[recovered])
        counted.append(Onsets(name, wall[failed & risk], others, count))
    for t in rng.integers(0, 20_000 * step, 300):
        events.append(_mac(int(t)))
    events.sort(key=lambda e: e.wall_ns)
    kw = {"probe_interval_ns": step, "span_ns": 20_000 * step, "bridges": ["br0"]}
    assert correlate(at_risk, events, **kw) == correlate_onsets(counted, events, **kw)
