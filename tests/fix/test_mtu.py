"""The pure planner of `fix mtu`."""

from __future__ import annotations

import pytest

from netsleuth.errors import InvalidArgument
from netsleuth.fix import MtuPlan, plan_mtu
from netsleuth.netns import RawLink


def link(index: int, name: str, mtu: int, master: int = 0) -> RawLink:
    return RawLink(index, name, "02:00:00:00:00:01", mtu, "", master, "UP", None)


LINKS = [
    link(1, "lo", 65536),
    link(2, "eth0", 1450),  # the default route leaves here
    link(3, "br0", 1500),
    link(4, "veth1", 1500, master=3),
    link(5, "veth2", 9000, master=3),
    link(6, "other", 1400),  # on no bridge
]


def test_the_smallest_of_bridge_ports_and_egress() -> None:
    plan = plan_mtu(LINKS, "br0", default_oifs=[2])
    assert plan.mtu == 1450
    assert plan.before == {"br0": 1500, "veth1": 1500, "veth2": 9000}
    assert plan.todo == {"br0": 1500, "veth1": 1500, "veth2": 9000}


def test_without_a_default_route_only_the_bridge_and_its_ports_count() -> None:
    plan = plan_mtu(LINKS, "br0")
    assert plan.mtu == 1500 and plan.todo == {"veth2": 9000}


def test_a_default_route_through_the_bridge_itself_is_not_the_egress() -> None:
    assert plan_mtu(LINKS, "br0", default_oifs=[3, 99]).mtu == 1500


def test_the_mtu_asked_for_wins_and_ports_change_before_the_bridge() -> None:
    plan = plan_mtu(LINKS, "br0", default_oifs=[2], wanted=9000)
    assert plan.mtu == 9000 and plan.todo == {"br0": 1500, "veth1": 1500}
    assert plan.order() == ["veth1", "br0"]
    assert MtuPlan("br0", 1400, {"br0": 1500, "a": 1500, "b": 1400}).order() == ["a", "br0"]


def test_nothing_to_do_when_all_agree() -> None:
    same = [link(3, "br0", 1500), link(4, "veth1", 1500, master=3)]
    plan = plan_mtu(same, "br0")
    assert plan.todo == {} and plan.order() == []


def test_an_unknown_bridge_says_what_to_check() -> None:
    with pytest.raises(InvalidArgument, match="no interface br9 here"):
        plan_mtu(LINKS, "br9")
