"""The pure planner of `fix bridge`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netsleuth.errors import InvalidArgument
from netsleuth.fix import (
    BridgeFixPlan,
    Definition,
    EditRefused,
    apply_bridge_fix,
    derive_mac,
    plan_bridge_fix,
)
from netsleuth.model import Bridge

MID = "3d1219c7c4c5404aaa1f6d2a48adfda4"
UNPINNED = Bridge("br-ci", "host", "26:aa:10:00:00:01", 1)


def plan(state: Bridge = UNPINNED, **kw: Any) -> BridgeFixPlan:
    args: dict[str, Any] = {
        "mac_spec": "auto", "persist": "none", "definitions": [],
        "etc_root": Path("/nonexistent"), "machine_id": MID,
    }  # fmt: skip
    args.update(kw)
    return plan_bridge_fix(state, "host", **args)


def test_auto_current_and_given_mac() -> None:
    assert plan().mac == derive_mac("br-ci", MID)
    assert plan(mac_spec="current").mac == UNPINNED.mac
    assert plan(mac_spec="02-00-00-00-00-07").mac == "02:00:00:00:00:07"
    with pytest.raises(InvalidArgument, match="no MAC yet"):
        plan(Bridge("br-ci", "host", "00:00:00:00:00:00", 1), mac_spec="current")


def test_pinned_to_the_same_mac_needs_no_runtime_change() -> None:
    p = plan(Bridge("br-ci", "host", UNPINNED.mac, 3), mac_spec="current")
    assert not p.runtime_change and not p.changes_anything
    assert "already pinned" in p.steps()[0]
    q = plan(Bridge("br-ci", "host", UNPINNED.mac, 1), mac_spec="current")
    assert q.runtime_change and "addr_assign_type 1 -> 3" in q.steps()[0]


def test_refuses_without_a_definition_and_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "systemd" / "network").mkdir(parents=True)
    p = plan(persist="auto", etc_root=tmp_path)
    assert "MACAddress=" in p.refusal and "--persist none" in p.refusal
    assert "hwaddress" not in p.refusal  # no ifupdown here
    with pytest.raises(EditRefused):
        apply_bridge_fix(p, None)


def test_persist_choice_limits_the_managers(tmp_path: Path) -> None:
    f = tmp_path / "x.netdev"
    f.write_text("[NetDev]\nName=br-ci\nKind=bridge\n")
    d = Definition("networkd", f, "br-ci")
    assert plan(persist="ifupdown", definitions=[d], etc_root=tmp_path).refusal
    p = plan(persist="auto", definitions=[d], etc_root=tmp_path)
    assert not p.refusal and p.edits[0].changed
    assert f"MACAddress={p.mac}" in p.edits[0].diff()


def test_arp_notify_step() -> None:
    assert plan(arp_notify="0").arp_notify_change
    assert not plan(arp_notify="1").arp_notify_change
    with pytest.raises(InvalidArgument):
        plan(persist="ifcfg")
