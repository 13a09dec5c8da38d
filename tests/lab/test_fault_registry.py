"""The lab's faults are keyed by cause id, each has a test that runs it, and
the old names still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsleuth.causes import CAUSES
from netsleuth.errors import InvalidArgument
from netsleuth.lab.faults import ALIASES, FAULTS, fault_help, fault_ids, fault_spec
from netsleuth.lab.run import LabOptions

HERE = Path(__file__).parent


def test_every_fault_reproduces_a_catalogued_scored_cause() -> None:
    for cause_id, spec in FAULTS.items():
        assert spec.id == cause_id
        assert cause_id in CAUSES, cause_id
        assert CAUSES[cause_id].scored, f"{cause_id}: report cannot name it"


def test_every_fault_has_a_test_that_runs_it_and_reports() -> None:
    tests = "\n".join(
        f.read_text() for f in HERE.glob("test_*.py") if f.name != Path(__file__).name
    )
    tests += (HERE.parent / "analysis" / "test_lab_stores.py").read_text()
    missing = [cause_id for cause_id in FAULTS if f'"{cause_id}"' not in tests]
    assert not missing, f"no lab test runs: {missing}"


def test_aliases_and_help() -> None:
    assert fault_spec("nat-flap") is FAULTS["nat-missing"]
    assert fault_spec("upstream-loss") is FAULTS["upstream-dns"]
    assert fault_spec("none") is None
    assert set(fault_ids()) == {"none", *FAULTS, *ALIASES}
    text = fault_help()
    assert all(cause_id in text for cause_id in FAULTS)
    with pytest.raises(InvalidArgument, match="unknown; use one of"):
        fault_spec("no-such-fault")


def test_churn_runs_only_for_the_flap() -> None:
    assert LabOptions().churn_kind == "veth"  # no fault: the original lab
    assert LabOptions(fault="bridge-mac-flap").churn_kind == "veth"
    assert LabOptions(fault="bridge-mac-flap").churn_mac_kind == "low"
    assert LabOptions(fault="nat-missing").churn_kind == "none"
    assert LabOptions(fault="nat-missing", churn="veth").churn_kind == "veth"
    assert LabOptions(fault="nat-flap").case_name == "nat-missing"
    assert LabOptions(fault="nat-missing", fixed=True).case_name == "nat-missing fixed"


def test_compare_needs_a_fix_the_lab_can_apply() -> None:
    from netsleuth.lab.run import compare

    unfixable = next((f for f, s in FAULTS.items() if not s.churn and not s.fixable), None)
    if unfixable is None:
        pytest.skip("every fault is fixable")
    with pytest.raises(InvalidArgument, match="no fix the lab can apply"):
        compare(LabOptions(fault=unfixable))
