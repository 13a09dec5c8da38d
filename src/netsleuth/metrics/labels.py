"""Bounded label values.

Churn creates a new veth name every few seconds; a label per interface name
would grow the number of series without end. :class:`InterfaceLabels` maps
an event's interface to a label value from a bounded set:

1. no interface → ``none``;
2. a port of a known bridge (the event names the bridge, or the port was seen
   joining it) → ``port:<bridge>``;
3. a link of a kind created per container or VM (the kind in the event's detail,
   or that of an earlier event about the same link, is ``veth``, ``tap``,
   ...), or a name with such a prefix (``veth…``,
   ``vnet…``, ``tap…``, ``cali…``, ``lxc…``) → that kind or prefix and
   ``*``, e.g. ``veth*``;
4. anything else → the name itself, until ``limit`` distinct values have been
   handed out; after that → ``other``.

Pure logic, no I/O: the caller feeds it events in order.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from netsleuth.model import EventKind, LinkDetail, MacChange, NetEvent

__all__ = ["OTHER", "BoundedValues", "InterfaceLabels"]

OTHER = "other"
NONE = "none"

_EPHEMERAL = re.compile(r"^(veth|vnet|tap|cali|lxc|macvtap)[0-9a-zA-Z._@-]*$")
_EPHEMERAL_KINDS = frozenset({"veth", "tap", "tun", "macvtap", "netkit"})

# Events whose ``subject`` is the bridge the interface is (or was) a port of.
_PORT_KINDS = frozenset(
    {EventKind.PORT_JOINED, EventKind.PORT_LEFT, EventKind.FDB_ADDED, EventKind.FDB_REMOVED}
)


class BoundedValues:
    """Hands out at most ``limit`` distinct values; later new ones become ``other``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._seen: set[str] = set()

    def get(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(value)
        return value

    def __len__(self) -> int:
        return len(self._seen)


class InterfaceLabels:
    """Maps the interface of a :class:`NetEvent` to a bounded label value."""

    def __init__(self, limit: int = 64, remember_ports: int = 4096) -> None:
        self._values = BoundedValues(limit)
        self._bridges = BoundedValues(limit)
        self._port_of: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._kind_of: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._limit_remembered = remember_ports

    def bridge_label(self, bridge: str) -> str:
        """The label value of a bridge name (bounded on its own)."""
        return self._bridges.get(bridge)

    def label(self, event: NetEvent) -> str:
        ifname = event.ifname
        if not ifname:
            return NONE
        key = (event.netns, ifname)
        detail = event.detail
        bridge = ""
        if event.kind in _PORT_KINDS and event.subject and event.subject != ifname:
            bridge = event.subject
        elif isinstance(detail, LinkDetail) and detail.master:
            bridge = detail.master
        if bridge:
            self._remember(self._port_of, key, bridge)
        else:
            bridge = self._port_of.get(key, "")
        if event.kind is EventKind.LINK_REMOVED:
            self._port_of.pop(key, None)
        if bridge:
            return f"port:{self.bridge_label(bridge)}"
        link_kind = detail.kind if isinstance(detail, LinkDetail | MacChange) else None
        if link_kind in _EPHEMERAL_KINDS:
            self._remember(self._kind_of, key, link_kind)
        else:
            link_kind = self._kind_of.get(key)
        if event.kind is EventKind.LINK_REMOVED:
            self._kind_of.pop(key, None)
        if link_kind:
            return f"{link_kind}*"
        match = _EPHEMERAL.match(ifname)
        if match:
            return f"{match.group(1)}*"
        return self._values.get(ifname)

    def _remember(
        self, table: OrderedDict[tuple[str, str], str], key: tuple[str, str], value: str
    ) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._limit_remembered:
            table.popitem(last=False)
