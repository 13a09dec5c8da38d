"""The facts that cross package boundaries, as frozen dataclasses.

- :class:`ProbeResult`: one probe attempt, whatever its outcome.
- :class:`NetEvent`: one thing that happened on the network (netlink, nftables,
  Docker, the stale-gateway invariant, a target coming and going).
- :class:`Finding`: one conclusion of an audit rule or of the report.
- :class:`Bridge`: what a bridge is at one moment (MAC, how it was assigned,
  ports, arp_notify); ``pinned`` is decided here and nowhere else.
- :class:`StateChange`: the detail of a ``state-entered``/``state-left``
  event: a target entered or left a :class:`StateKind` that a cause predicts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ADDR_ASSIGN_SET",
    "Bridge",
    "EventKind",
    "Finding",
    "NetEvent",
    "Outcome",
    "ProbeResult",
    "Severity",
    "StateChange",
    "StateKind",
]


class Outcome(enum.IntEnum):
    """How one probe attempt ended. The integer is what the store keeps."""

    OK = 0
    TIMEOUT = 1
    REFUSED = 2
    NXDOMAIN = 3
    SERVFAIL = 4
    UNREACHABLE = 5
    TARGET_GONE = 6
    ERROR = 7
    BAD_ANSWER = 8

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def failed(self) -> bool:
        """Everything but OK, NXDOMAIN and TARGET_GONE counts as a failure of
        connectivity.

        NXDOMAIN is an answer: the path worked, the name does not exist. A
        target that is gone (its namespace or container ended) is an ending,
        not a failure: nothing was there to probe from.
        """
        return self not in (Outcome.OK, Outcome.NXDOMAIN, Outcome.TARGET_GONE)


class EventKind(enum.StrEnum):
    """Kinds of :class:`NetEvent`. Strings so the store and JSON stay readable."""

    LINK_ADDED = "link-added"
    LINK_REMOVED = "link-removed"
    PORT_JOINED = "port-joined"
    PORT_LEFT = "port-left"
    MAC_CHANGED = "mac-changed"
    OPER_CHANGED = "oper-changed"
    MTU_CHANGED = "mtu-changed"
    NEIGH_CHANGED = "neigh-changed"
    FDB_ADDED = "fdb-added"
    FDB_REMOVED = "fdb-removed"
    ROUTE_ADDED = "route-added"
    ROUTE_REMOVED = "route-removed"
    FIREWALL_CHANGED = "firewall-changed"
    INVARIANT_VIOLATED = "invariant-violated"
    INVARIANT_RECOVERED = "invariant-recovered"
    STATE_ENTERED = "state-entered"
    STATE_LEFT = "state-left"
    TARGET_GONE = "target-gone"
    TARGET_BACK = "target-back"
    DOCKER = "docker"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe attempt.

    ``wall_ns`` is the wall-clock time the attempt was sent (ns since the
    epoch), ``mono_ns`` the CLOCK_MONOTONIC time of the same instant.
    ``latency_ns`` is None when no answer came back.
    """

    wall_ns: int
    mono_ns: int
    target: str
    probe: str
    server: str
    outcome: Outcome
    latency_ns: int | None = None
    answer: str = ""


@dataclass(frozen=True, slots=True)
class NetEvent:
    """One network event, stamped like :class:`ProbeResult`.

    ``netns`` names where it was seen (``host`` or a target), ``ifname`` the
    interface it is about (if any), ``subject`` what it relates to (the bridge
    of a port event, the gateway address of a neighbour event, a container
    name), and ``detail`` the rest (old/new MAC, state, ...).
    """

    wall_ns: int
    mono_ns: int
    netns: str
    kind: EventKind
    ifname: str = ""
    subject: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    """One conclusion: which rule, about what, how bad, what was seen, what to do."""

    rule: str
    severity: Severity
    subject: str
    title: str
    evidence: dict[str, Any]
    why: str
    fix: str
    cause: str = ""
    """The id of the catalogue cause it bears on (:mod:`netsleuth.causes`)."""

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (doctor --json, explain --json)."""
        return {
            "rule": self.rule,
            "severity": self.severity.label,
            "subject": self.subject,
            "title": self.title,
            "evidence": self.evidence,
            "why": self.why,
            "fix": self.fix,
            **({"cause": self.cause} if self.cause else {}),
        }


ADDR_ASSIGN_SET = 3
"""``addr_assign_type`` of a MAC set explicitly (NET_ADDR_SET): the bridge is pinned."""


@dataclass(frozen=True, slots=True)
class Bridge:
    """A Linux bridge at one moment, in the namespace labelled ``netns``.

    ``addr_assign_type`` is the kernel's (0 permanent, 1 random, 2 stolen,
    3 set; None when unreadable). A bridge whose MAC was never set takes the
    smallest MAC of its ports: only ``pinned`` bridges keep theirs.
    """

    name: str
    netns: str
    mac: str | None
    addr_assign_type: int | None
    ports: tuple[str, ...] = ()
    arp_notify: int | None = None

    @property
    def pinned(self) -> bool | None:
        if self.addr_assign_type is None:
            return None
        return self.addr_assign_type == ADDR_ASSIGN_SET

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "netns": self.netns,
            "mac": self.mac,
            "addr_assign_type": self.addr_assign_type,
            "pinned": self.pinned,
            "ports": list(self.ports),
            "arp_notify": self.arp_notify,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, name: str = "", netns: str = "host") -> Bridge:
        """Read back :meth:`to_json` (also the older fact form without ``name``)."""
        aat = data.get("addr_assign_type")
        arp = data.get("arp_notify")
        return cls(
            name=str(data.get("name") or name),
            netns=str(data.get("netns") or netns),
            mac=data.get("mac"),
            addr_assign_type=int(aat) if aat is not None else None,
            ports=tuple(str(p) for p in data.get("ports", ())),
            arp_notify=int(arp) if arp is not None else None,
        )


class StateKind(enum.StrEnum):
    """States of a target that a cause's mechanism predicts; ``watch`` records
    when each begins and ends (``state-entered`` / ``state-left`` events)."""

    GATEWAY_MAC_GONE = "gateway-mac-gone"
    """The gateway entry holds a MAC that neither the bridge nor any of its ports has."""
    GATEWAY_MAC_PORT = "gateway-mac-port"
    """The gateway entry holds the MAC of another port, not the bridge's own."""
    GATEWAY_MAC_FOREIGN = "gateway-mac-foreign"
    """The gateway entry holds a MAC learned behind a port: someone else answers for it."""
    GATEWAY_UNRESOLVED = "gateway-unresolved"
    """The gateway entry is INCOMPLETE or FAILED."""
    NAT_MISSING = "nat-missing"
    """No masquerade/SNAT rule covers the target's subnet."""
    FORWARD_BLOCKED = "forward-blocked"
    """A forward chain drops the target's subnet."""
    PATH_LINK_DOWN = "path-link-down"
    """A link on the target's path (its veth, the peer, the bridge) is down or deleted."""
    ROUTE_MISSING = "route-missing"
    """The target's default route or its address is missing."""
    GATEWAY_AT_RISK = "gateway-at-risk"
    """Not a failure: the gateway MAC belongs to a port that may leave."""

    @property
    def lossy(self) -> bool:
        """Does the mechanism predict lost traffic while the state lasts?"""
        return self is not StateKind.GATEWAY_AT_RISK


@dataclass(frozen=True, slots=True)
class StateChange:
    """The detail of a state event: which state, on which bridge, and what
    was seen (``mac``: the gateway entry's MAC; ``link``: the link that is
    down; ``port``: the port that holds the MAC; ``subnet``: the target's)."""

    state: StateKind
    bridge: str = ""
    mac: str = ""
    port: str = ""
    link: str = ""
    subnet: str = ""
    note: str = ""

    def to_detail(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("state", str(self.state)),
                ("bridge", self.bridge),
                ("mac", self.mac),
                ("port", self.port),
                ("link", self.link),
                ("subnet", self.subnet),
                ("note", self.note),
            )
            if v
        }

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> StateChange:
        return cls(
            state=StateKind(str(detail["state"])),
            bridge=str(detail.get("bridge", "")),
            mac=str(detail.get("mac", "")),
            port=str(detail.get("port", "")),
            link=str(detail.get("link", "")),
            subnet=str(detail.get("subnet", "")),
            note=str(detail.get("note", "")),
        )
