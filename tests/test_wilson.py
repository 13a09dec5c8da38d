"""The Wilson interval without scipy (netsleuth.stats): the same numbers as
scipy's, for the live view that must not load scipy."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scipy.stats import binomtest

from netsleuth.stats import wilson


@pytest.mark.parametrize("confidence", [0.5, 0.9, 0.95, 0.99, 0.999])
def test_equals_scipy_wilson_interval(confidence: float) -> None:
    for attempts in [*range(1, 40), 100, 1_000, 12_345, 1_000_000]:
        edges = {0, 1, 2, attempts // 3, attempts // 2, attempts - 1, attempts}
        for failed in sorted(f for f in edges if f <= attempts):
            ci = binomtest(failed, attempts).proportion_ci(
                confidence_level=confidence, method="wilson"
            )
            low, high = wilson(failed, attempts, confidence)
            assert low == pytest.approx(ci.low, abs=1e-12), (failed, attempts)
            assert high == pytest.approx(ci.high, abs=1e-12), (failed, attempts)


def test_edges() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 10)[0] == 0.0
    assert wilson(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="11 failures out of 10"):
        wilson(11, 10)


def test_the_live_view_loads_no_scipy() -> None:
    code = (
        "import sys, netsleuth.watch.view as view; view.wilson(3, 100); "
        "print('scipy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
