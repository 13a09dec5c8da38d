"""The facts that cross package boundaries, as frozen dataclasses.

- :class:`ProbeResult`: one probe attempt, whatever its outcome.
- :class:`NetEvent`: one thing that happened on the network (netlink, nftables,
  Docker, the stale-gateway invariant, a target coming and going).
- :class:`Finding`: one conclusion of an audit rule or of the report.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventKind", "Finding", "NetEvent", "Outcome", "ProbeResult", "Severity"]


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
        """Everything but OK and NXDOMAIN counts as a failure of connectivity.

        NXDOMAIN is an answer: the path worked, the name does not exist.
        """
        return self not in (Outcome.OK, Outcome.NXDOMAIN)


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
        }
