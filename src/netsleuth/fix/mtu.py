"""``fix mtu``: give a bridge and its ports one MTU.

A bridge takes the smallest MTU of its ports; a port with a bigger MTU than
the path out drops (or fragments) what it forwards. :func:`plan_mtu` decides
(pure): the MTU wanted, or else the smallest of the bridge, its ports and
the interface the default route leaves by, and which links need it.
:func:`read_mtu_plan` reads the links and default routes of a namespace
(:class:`netsleuth.netns.Links`) and plans; :func:`apply_mtu_plan` sets it,
ports first (a bridge cannot be set above its smallest port).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from netsleuth.errors import InvalidArgument
from netsleuth.fix.apply import set_link_mtu
from netsleuth.netns import Links, Namespace, RawLink

__all__ = ["MtuPlan", "apply_mtu_plan", "plan_mtu", "read_mtu_plan"]


@dataclass(frozen=True, slots=True)
class MtuPlan:
    bridge: str
    mtu: int
    before: dict[str, int]  # the bridge's and its ports' MTUs now, in link order

    @property
    def todo(self) -> dict[str, int]:
        """The links whose MTU changes, with their MTU now."""
        return {name: mtu for name, mtu in self.before.items() if mtu != self.mtu}

    def order(self) -> list[str]:
        """The links to change, ports first, the bridge last."""
        return sorted(self.todo, key=lambda name: name == self.bridge)


def plan_mtu(
    links: Sequence[RawLink],
    bridge: str,
    default_oifs: Sequence[int] = (),
    wanted: int | None = None,
) -> MtuPlan:
    """The plan for ``bridge`` among ``links`` (one namespace's), where
    ``default_oifs`` are the interfaces its default routes leave by."""
    found = [link for link in links if link.name == bridge]
    if not found:
        raise InvalidArgument(f"no interface {bridge} here; check `ip link`")
    index = found[0].index
    before = {link.name: link.mtu for link in links if index in (link.index, link.master)}
    by_index = {link.index: link for link in links}
    egress = [by_index[oif].mtu for oif in default_oifs if oif in by_index and oif != index]
    mtu = wanted or min([*before.values(), *egress])
    return MtuPlan(bridge, mtu, before)


def read_mtu_plan(netns: str | Path | None, bridge: str, wanted: int | None = None) -> MtuPlan:
    """Read ``netns``'s links and default routes (None: this namespace) and plan."""

    def body() -> MtuPlan:
        with Links() as links:
            found, routes = links.links(), links.routes()
        oifs = [r.oif for r in routes if r.family == socket.AF_INET and r.dst_len == 0 and r.oif]
        return plan_mtu(found, bridge, oifs, wanted)

    return Namespace.of(netns).run(body)


def apply_mtu_plan(plan: MtuPlan, netns: str | Path | None) -> dict[str, tuple[int, int]]:
    """Set every link of the plan; (old, new) MTU per link changed."""
    return {name: set_link_mtu(netns, name, plan.mtu) for name in plan.order()}
