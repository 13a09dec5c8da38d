"""The statistical helpers against values worked out by hand."""

from __future__ import annotations

import pytest

from netsleuth.analysis.stats import (
    fisher_greater,
    holm,
    probes_to_see_one,
    rate_upper_bound,
    relative_risk,
    wilson,
)


def test_holm_step_down_is_monotone_and_capped() -> None:
    # sorted p: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> max(0.06, 0.04)=0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_wilson_contains_the_rate_and_is_wider_for_less_data() -> None:
    low, high = wilson(3, 1000)
    assert low < 0.003 < high
    low100, high100 = wilson(3, 100)
    assert (high - low) < (high100 - low100)
    assert wilson(0, 0) == (0.0, 1.0)


def test_zero_failure_bound_is_the_rule_of_three() -> None:
    bound = rate_upper_bound(0, 450_000)
    assert bound == pytest.approx(1 - 0.05 ** (1 / 450_000))
    assert bound == pytest.approx(3 / 450_000, rel=0.01)
    assert probes_to_see_one(bound) == pytest.approx(150_000, rel=0.01)
    assert probes_to_see_one(0.0) == 0


def test_fisher_one_sided_and_relative_risk() -> None:
    assert fisher_greater(20, 30, 0, 1000) < 1e-20
    assert fisher_greater(0, 30, 20, 1000) == 1.0
    assert fisher_greater(1, 99, 10, 990) > 0.4  # same rate: no evidence
    assert relative_risk(10, 100, 10, 1000) == pytest.approx((10.5 / 101) / (10.5 / 1001))
