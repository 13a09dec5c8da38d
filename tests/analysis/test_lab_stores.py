"""The report on stores recorded by the real lab (namespaces, bridge, dnsmasq,
churn, nftables faults): it names the flapping bridge, and only that.

The five lab cases run in the suite's lab farm (netsleuth_testing.labruns),
side by side with the other modules' lab runs.
"""

from __future__ import annotations

import pytest

from netsleuth.analysis import Analysis, analyze
from netsleuth.store import Store
from netsleuth_testing.labruns import book, farm_runs

pytestmark = pytest.mark.lab

# Churn ports with a new lowest MAC each cycle, 2 s on the bridge, 8 s off: far
# enough apart for a container's gateway entry to recover between outages (a
# REACHABLE entry stays on a dead MAC for up to ~45 s, a STALE one ~6 s), and
# four containers so that most cycles start an outage somewhere.
CHURN = ["--churn-mac", "low", "--t-in", "2", "--t-out", "8"]
CASES = {
    "unpinned": [*CHURN, "--containers", "4", "--duration", "60"],
    "pinned": ["--pin-mac", *CHURN, "--duration", "30"],
    "no-churn": ["--churn", "none", "--duration", "20"],
    "nat-flap": ["--pin-mac", *CHURN, "--fault", "nat-flap", "--duration", "40"],
    "upstream-loss": ["--pin-mac", *CHURN, "--fault", "upstream-loss", "--duration", "30"],
}
book("stores", {name: ["--seed", "7", *args] for name, args in CASES.items()}, report=False)


@pytest.fixture(scope="module")
def lab_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Analysis, str]]:
    out: dict[str, tuple[Analysis, str]] = {}
    for name, run in farm_runs("stores", tmp_path_factory.mktemp("farm")).items():
        with Store(run.store) as s:
            bridge = str(s.runs()[-1].args.get("bridge", ""))
            out[name] = (analyze(s), bridge)
    return out


def test_unpinned_churn_names_the_right_bridge(lab_stores: dict[str, tuple[Analysis, str]]) -> None:
    analysis, bridge = lab_stores["unpinned"]
    v = analysis.verdict
    assert bridge
    assert (v.cause, v.bridge) == ("bridge-mac-flap", bridge), v
    assert v.p_value is not None and v.p_value < 0.01
    assert f"netsleuth fix bridge {bridge}" in v.fix
    assert any("no fixed MAC" in e for e in v.evidence)


@pytest.mark.parametrize("case", ["pinned", "no-churn"])
def test_no_bridge_verdict_without_flapping(
    lab_stores: dict[str, tuple[Analysis, str]], case: str
) -> None:
    analysis, _ = lab_stores[case]
    assert analysis.verdict.cause != "bridge-mac-flap", analysis.verdict
    assert analysis.verdict.bridge is None
    assert not any(b.mac_changes for b in analysis.bridges)
    if analysis.failed == 0:  # a loaded machine may lose a probe now and then
        assert analysis.verdict.cause == "no-failures"
        assert any("0 failures: the failure rate is below" in n for n in analysis.notes)


def test_nat_flap_is_not_blamed_on_the_bridge(
    lab_stores: dict[str, tuple[Analysis, str]],
) -> None:
    analysis, _ = lab_stores["nat-flap"]
    assert analysis.failed > 0
    assert analysis.verdict.cause == "nat-missing", analysis.verdict
    assert analysis.verdict.bridge is None


def test_upstream_loss_is_not_blamed_on_the_bridge(
    lab_stores: dict[str, tuple[Analysis, str]],
) -> None:
    analysis, _ = lab_stores["upstream-loss"]
    assert analysis.failed > 0
    assert analysis.verdict.cause == "upstream-dns", analysis.verdict
    assert analysis.verdict.bridge is None
    assert not any(c.significant and c.bridge for c in analysis.correlations)
