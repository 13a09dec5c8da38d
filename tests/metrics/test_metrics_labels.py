"""Interface labels stay bounded however many veths churn."""

from __future__ import annotations

import pytest

from netsleuth.metrics.labels import OTHER, BoundedValues, InterfaceLabels
from netsleuth.model import EventDetail, EventKind, LinkDetail, NetEvent


def ev(
    event_kind: EventKind,
    ifname: str,
    subject: str = "",
    netns: str = "host",
    detail: EventDetail | None = None,
) -> NetEvent:
    if detail is None:
        return NetEvent(0, 0, netns, event_kind, ifname, subject)
    return NetEvent(0, 0, netns, event_kind, ifname, subject, detail)


def test_bounded_values_hands_out_limit_then_other() -> None:
    values = BoundedValues(2)
    assert [values.get(v) for v in ["a", "b", "c", "a", "b", "d"]] == [
        "a",
        "b",
        OTHER,
        "a",
        "b",
        OTHER,
    ]
    assert len(values) == 2
    with pytest.raises(ValueError):
        BoundedValues(0)


def test_port_events_collapse_to_their_bridge() -> None:
    labels = InterfaceLabels()
    assert labels.label(ev(EventKind.PORT_JOINED, "nsl-c17", "br-lab")) == "port:br-lab"
    # Later events about the same port, without the bridge, still map to it.
    assert labels.label(ev(EventKind.MAC_CHANGED, "nsl-c17")) == "port:br-lab"
    assert labels.label(ev(EventKind.LINK_REMOVED, "nsl-c17")) == "port:br-lab"
    # Once removed, the name is forgotten: a new link with that name is new.
    assert labels.label(ev(EventKind.LINK_ADDED, "nsl-c17")) == "nsl-c17"


def test_master_in_detail_names_the_bridge() -> None:
    labels = InterfaceLabels()
    assert (
        labels.label(ev(EventKind.LINK_ADDED, "x1", detail=LinkDetail(master="docker0")))
        == "port:docker0"
    )


def test_ephemeral_names_collapse_to_prefix() -> None:
    labels = InterfaceLabels()
    assert labels.label(ev(EventKind.LINK_ADDED, "veth3f2a1b9")) == "veth*"
    assert labels.label(ev(EventKind.LINK_ADDED, "vnet12")) == "vnet*"
    assert labels.label(ev(EventKind.LINK_ADDED, "cali1234abcd")) == "cali*"
    assert labels.label(ev(EventKind.LINK_ADDED, "eth0")) == "eth0"
    assert labels.label(ev(EventKind.NOTE, "")) == "none"
    # Whatever the name, a link of a per-container kind collapses to its kind.
    assert (
        labels.label(ev(EventKind.LINK_ADDED, "nsl-c17", detail=LinkDetail(kind="veth"))) == "veth*"
    )
    assert labels.label(ev(EventKind.LINK_ADDED, "br0", detail=LinkDetail(kind="bridge"))) == "br0"


def test_kind_learned_from_link_added_applies_to_later_events() -> None:
    labels = InterfaceLabels()
    assert (
        labels.label(ev(EventKind.LINK_ADDED, "vch7p", detail=LinkDetail(kind="veth"))) == "veth*"
    )
    assert labels.label(ev(EventKind.OPER_CHANGED, "vch7p")) == "veth*"
    assert labels.label(ev(EventKind.LINK_REMOVED, "vch7p")) == "veth*"
    assert labels.label(ev(EventKind.OPER_CHANGED, "vch7p")) == "vch7p"  # forgotten


def test_bridge_itself_keeps_its_name() -> None:
    labels = InterfaceLabels()
    labels.label(ev(EventKind.PORT_JOINED, "veth1", "br0"))
    assert labels.label(ev(EventKind.MAC_CHANGED, "br0")) == "br0"


def test_churn_of_ten_thousand_names_stays_bounded() -> None:
    labels = InterfaceLabels(limit=8, remember_ports=16)
    seen = set()
    for i in range(10_000):
        name = f"lab{i}"  # not an ephemeral prefix, never joins a bridge
        seen.add(labels.label(ev(EventKind.LINK_ADDED, name)))
        seen.add(labels.label(ev(EventKind.PORT_JOINED, f"p{i}", f"br{i % 3}")))
        seen.add(labels.label(ev(EventKind.LINK_REMOVED, f"p{i}")))
    assert len(seen) <= 8 + 3 + 1
    assert OTHER in seen
    assert {"port:br0", "port:br1", "port:br2"} <= seen
