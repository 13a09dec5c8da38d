"""The whole analysis on synthetic stores written through the real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsleuth.analysis import analyze
from netsleuth.store import Store
from netsleuth_testing.synthetic import generate, write_store

S = 1_000_000_000


def run_analysis(tmp_path: Path, scenario: str, **kw: object):  # type: ignore[no-untyped-def]
    path = tmp_path / f"{scenario}.sqlite"
    write_store(path, generate(scenario, **kw))  # type: ignore[arg-type]
    with Store(path) as store:
        return analyze(store)


def test_unpinned_churn_is_a_bridge_mac_flap_on_the_right_bridge(tmp_path: Path) -> None:
    a = run_analysis(tmp_path, "flap", seconds=60)
    v = a.verdict
    assert (v.cause, v.bridge, v.confidence) == ("bridge-mac-flap", "lbr0", "high")
    assert v.p_value is not None and v.p_value < 1e-6
    assert "netsleuth fix bridge lbr0" in v.fix
    assert any("no fixed MAC" in e for e in v.evidence)
    assert any("stale during 40 of 40" in e for e in v.evidence)
    assert a.localisation == "namespaces"
    host = next(t for t in a.targets if t.target == "host")
    assert host.failed == 0 and host.ci_high < 0.01
    assert len(a.episodes) == 40 and all(d.gateway_stale for d in a.episodes)
    assert any("port left" in label for _, label in a.episodes[0].before)


@pytest.mark.parametrize("scenario", ["pinned", "quiet"])
def test_no_failures_gives_no_verdict_and_says_how_much_data_is_missing(
    tmp_path: Path, scenario: str
) -> None:
    a = run_analysis(tmp_path, scenario, seconds=30)
    assert a.verdict.cause == "no-failures" and a.verdict.bridge is None
    assert a.correlations == ()
    (note,) = [n for n in a.notes if "0 failures" in n]
    assert note.startswith("1800 probes, 0 failures: the failure rate is below 0.0017")
    assert "you need ~" in note


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_upstream_loss_with_a_flapping_bridge_is_not_blamed_on_it(
    tmp_path: Path, seed: int
) -> None:
    a = run_analysis(tmp_path, "upstream-loss", seconds=120, seed=seed)
    assert a.verdict.cause == "upstream-dns"
    assert a.verdict.bridge is None
    assert a.localisation == "everywhere"
    assert next(b for b in a.bridges if b.name == "lbr0").mac_changes > 50


def test_nat_flap_is_named_as_such(tmp_path: Path) -> None:
    a = run_analysis(tmp_path, "nat-flap", seconds=90)
    assert a.verdict.cause == "nat-missing" and a.verdict.bridge is None
    assert a.correlations[0].key == "firewall-changed:nat@host"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nat_flap_without_firewall_events_is_still_not_the_bridge(
    tmp_path: Path, seed: int
) -> None:
    a = run_analysis(tmp_path, "nat-flap", seconds=120, seed=seed, record_firewall=False)
    assert a.verdict.cause == "unknown" and a.verdict.bridge is None
    assert a.localisation == "namespaces"
    assert "No event class is significantly tied to the outages." in a.notes


def test_selection_by_run_and_time(tmp_path: Path) -> None:
    path = tmp_path / "two.sqlite"
    t0 = 1_900_000_000 * S
    quiet = write_store(path, generate("quiet", seconds=30, start_ns=t0))
    flap = write_store(path, generate("flap", seconds=30, start_ns=t0 + 60 * S))
    with Store(path) as store:
        assert analyze(store).verdict.cause == "bridge-mac-flap"
        only_quiet = analyze(store, runs=[quiet])
        assert only_quiet.verdict.cause == "no-failures" and only_quiet.runs == (quiet,)
        assert analyze(store, runs=[flap]).verdict.bridge == "lbr0"
        early = analyze(store, until_ns=t0 + 45 * S)
        assert early.verdict.cause == "no-failures" and early.probes == 30 * 20 * 3
        late = analyze(store, since_ns=t0 + 45 * S)
        assert late.verdict.cause == "bridge-mac-flap" and late.runs == (flap,)


def test_a_few_outages_are_called_too_few(tmp_path: Path) -> None:
    a = run_analysis(tmp_path, "flap", seconds=4, namespaces=1)
    assert len(a.episodes) == 1
    assert any(n.startswith("Only 1 outage in 160 probes: too few") for n in a.notes)


def test_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    Store(path, create=True).close()
    with Store(path) as store:
        a = analyze(store)
    assert (a.probes, a.verdict.cause, a.localisation) == (0, "no-failures", "no-data")


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        generate("bogus")
