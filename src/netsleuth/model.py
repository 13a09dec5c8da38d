"""The facts that cross package boundaries, as frozen dataclasses.

- :class:`ProbeResult`: one probe attempt, whatever its outcome.
- :class:`NetEvent`: one thing that happened on the network (netlink, nftables,
  Docker, the stale-gateway invariant, a target coming and going), with a
  detail typed by its kind (:data:`EventDetail`, :data:`DETAIL_TYPES`; each
  detail reads and writes the JSON the store keeps).
- :class:`Finding`: one conclusion of an audit rule or of the report.
- :class:`Bridge`: what a bridge is at one moment (MAC, how it was assigned,
  ports, arp_notify); ``pinned`` is decided here and nowhere else.
- :class:`StateChange`: the detail of a ``state-entered``/``state-left``
  event: a target entered or left a :class:`StateKind` that a cause predicts.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "ADDR_ASSIGN_SET",
    "DETAIL_TYPES",
    "Bridge",
    "CounterSample",
    "DockerDetail",
    "DropDetail",
    "EndDetail",
    "EventDetail",
    "EventKind",
    "FdbDetail",
    "Finding",
    "FirewallChange",
    "InvariantDetail",
    "JsonObject",
    "JsonValue",
    "LinkDetail",
    "MacChange",
    "MtuChange",
    "NeighChange",
    "NetEvent",
    "NoteDetail",
    "OperChange",
    "Outcome",
    "PortDetail",
    "ProbeResult",
    "RawDetail",
    "RouteDetail",
    "Severity",
    "StateChange",
    "StateKind",
    "TargetDetail",
    "detail_from_json",
    "drop_headers",
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
    TARGET_ENDED = "target-ended"
    DOCKER = "docker"
    NOTE = "note"
    COUNTERS = "counters"
    DROP = "drop"


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


# -- event details ----------------------------------------------------------------
#
# One frozen dataclass per kind of event says what its ``detail`` holds. The
# store keeps a detail as the JSON object of ``to_json()``; ``from_json()``
# reads one back, ignoring keys it does not know and taking a missing key as
# empty, and raises TypeError/ValueError on a value of the wrong type.
# detail_from_json() is the one way from stored JSON to a detail: what does
# not fit its kind becomes a RawDetail.

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
"""A value JSON can hold."""
JsonObject: TypeAlias = dict[str, JsonValue]
"""A detail as the store keeps it."""
_Json: TypeAlias = Mapping[str, object]  # what from_json() reads


def _text(data: _Json, key: str, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise TypeError(f"{key}: {value!r} is not a string")
    return value


def _opt_text(data: _Json, key: str) -> str | None:
    return None if data.get(key) is None else _text(data, key)


def _opt_int(data: _Json, key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key}: {value!r} is not an integer")
    return value


def _int(data: _Json, key: str) -> int:
    value = _opt_int(data, key)
    return 0 if value is None else value


def _flag(data: _Json, key: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TypeError(f"{key}: {value!r} is not true or false")
    return value


@dataclass(frozen=True, slots=True)
class LinkDetail:
    """``link-added`` / ``link-removed``: the link's kind (``bridge``,
    ``veth``, ``""`` ...), MAC and MTU (None on removal: not recorded).
    ``master`` is the bridge it is a port of, when the source names it."""

    kind: str = ""
    mac: str = ""
    mtu: int | None = None
    master: str = ""

    def to_json(self) -> JsonObject:
        out: JsonObject = {"kind": self.kind, "mac": self.mac}
        if self.mtu is not None:
            out["mtu"] = self.mtu
        if self.master:
            out["master"] = self.master
        return out

    @classmethod
    def from_json(cls, data: _Json) -> LinkDetail:
        return cls(
            _text(data, "kind"), _text(data, "mac"), _opt_int(data, "mtu"), _text(data, "master")
        )


@dataclass(frozen=True, slots=True)
class PortDetail:
    """``port-joined`` / ``port-left``: the port's MAC (the bridge is the
    event's ``subject``)."""

    mac: str = ""

    def to_json(self) -> JsonObject:
        return {"mac": self.mac}

    @classmethod
    def from_json(cls, data: _Json) -> PortDetail:
        return cls(_text(data, "mac"))


@dataclass(frozen=True, slots=True)
class MacChange:
    """``mac-changed``: the old and new MAC, the link's kind and its
    ``addr_assign_type`` after the change (None when unreadable; see
    :class:`Bridge`)."""

    old: str = ""
    new: str = ""
    kind: str = ""
    addr_assign_type: int | None = None

    def to_json(self) -> JsonObject:
        return {
            "old": self.old,
            "new": self.new,
            "kind": self.kind,
            "addr_assign_type": self.addr_assign_type,
        }

    @classmethod
    def from_json(cls, data: _Json) -> MacChange:
        return cls(
            _text(data, "old"),
            _text(data, "new"),
            _text(data, "kind"),
            _opt_int(data, "addr_assign_type"),
        )


@dataclass(frozen=True, slots=True)
class OperChange:
    """``oper-changed``: the old and new operational state (``UP``, ``DOWN`` ...)."""

    old: str = ""
    new: str = ""

    def to_json(self) -> JsonObject:
        return {"old": self.old, "new": self.new}

    @classmethod
    def from_json(cls, data: _Json) -> OperChange:
        return cls(_text(data, "old"), _text(data, "new"))


@dataclass(frozen=True, slots=True)
class MtuChange:
    """``mtu-changed``: the old and new MTU."""

    old: int = 0
    new: int = 0

    def to_json(self) -> JsonObject:
        return {"old": self.old, "new": self.new}

    @classmethod
    def from_json(cls, data: _Json) -> MtuChange:
        return cls(_int(data, "old"), _int(data, "new"))


@dataclass(frozen=True, slots=True)
class NeighChange:
    """``neigh-changed``: the entry's state (``STALE``, ``FAILED``, ``DELETED``
    ...) and MAC, before and after (the address is the event's ``subject``)."""

    state: str = ""
    lladdr: str = ""
    old_state: str = ""
    old_lladdr: str = ""

    def to_json(self) -> JsonObject:
        return {
            "state": self.state,
            "lladdr": self.lladdr,
            "old_state": self.old_state,
            "old_lladdr": self.old_lladdr,
        }

    @classmethod
    def from_json(cls, data: _Json) -> NeighChange:
        return cls(
            _text(data, "state"),
            _text(data, "lladdr"),
            _text(data, "old_state"),
            _text(data, "old_lladdr"),
        )


@dataclass(frozen=True, slots=True)
class FdbDetail:
    """``fdb-added`` / ``fdb-removed``: the MAC, and whether the entry is the
    bridge's own (a port's address) rather than learned."""

    mac: str = ""
    local: bool = False

    def to_json(self) -> JsonObject:
        return {"mac": self.mac, "local": self.local}

    @classmethod
    def from_json(cls, data: _Json) -> FdbDetail:
        return cls(_text(data, "mac"), _flag(data, "local"))


@dataclass(frozen=True, slots=True)
class RouteDetail:
    """``route-added`` / ``route-removed``: the gateway (the destination is the
    event's ``subject``)."""

    gateway: str = ""

    def to_json(self) -> JsonObject:
        return {"gateway": self.gateway}

    @classmethod
    def from_json(cls, data: _Json) -> RouteDetail:
        return cls(_text(data, "gateway"))


@dataclass(frozen=True, slots=True)
class FirewallChange:
    """``firewall-changed``: the operation (``add``, ``delete`` ...), the
    object (``rule``, ``chain`` ...), a one-line summary and whether it
    touches NAT."""

    op: str = ""
    object: str = ""
    summary: str = ""
    nat: bool = False

    def to_json(self) -> JsonObject:
        return {"op": self.op, "object": self.object, "summary": self.summary, "nat": self.nat}

    @classmethod
    def from_json(cls, data: _Json) -> FirewallChange:
        return cls(
            _text(data, "op"), _text(data, "object"), _text(data, "summary"), _flag(data, "nat")
        )


@dataclass(frozen=True, slots=True)
class InvariantDetail:
    """``invariant-violated`` / ``invariant-recovered``: the gateway's MAC,
    the MAC the target's entry holds, the gateway's bridge, and whether that
    MAC still belongs to one of the bridge's ports (frames still arrive)."""

    gateway_mac: str = ""
    neigh_mac: str = ""
    bridge: str = ""
    owned_by_port: bool = False

    def to_json(self) -> JsonObject:
        return {
            "gateway_mac": self.gateway_mac,
            "neigh_mac": self.neigh_mac,
            "bridge": self.bridge,
            "owned_by_port": self.owned_by_port,
        }

    @classmethod
    def from_json(cls, data: _Json) -> InvariantDetail:
        return cls(
            _text(data, "gateway_mac"),
            _text(data, "neigh_mac"),
            _text(data, "bridge"),
            _flag(data, "owned_by_port"),
        )


@dataclass(frozen=True, slots=True)
class TargetDetail:
    """``target-gone`` / ``target-back``: why it went (empty on return)."""

    reason: str = ""

    def to_json(self) -> JsonObject:
        return {"reason": self.reason} if self.reason else {}

    @classmethod
    def from_json(cls, data: _Json) -> TargetDetail:
        return cls(_text(data, "reason"))


@dataclass(frozen=True, slots=True)
class EndDetail:
    """``target-ended``: a watched container ended (it exited, was stopped or
    removed): its life is over, which is not an outage. ``daemon``, ``id`` and
    ``image`` say which container; ``exit_code`` is its status when the daemon
    gave it."""

    daemon: str = ""
    id: str = ""
    image: str = ""
    exit_code: int | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {"daemon": self.daemon, "id": self.id, "image": self.image}
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        return out

    @classmethod
    def from_json(cls, data: _Json) -> EndDetail:
        return cls(
            _text(data, "daemon"),
            _text(data, "id"),
            _text(data, "image"),
            _opt_int(data, "exit_code"),
        )


@dataclass(frozen=True, slots=True)
class DockerDetail:
    """``docker``: one Engine API event of ``daemon``: its action and type,
    the container's ID and image; ``network``/``network_id`` for a network
    event (the container is then an attribute), ``exit_code``/``signal`` when
    the daemon gives them."""

    action: str = ""
    type: str = "container"
    daemon: str = ""
    id: str = ""
    image: str = ""
    network: str | None = None
    network_id: str | None = None
    exit_code: int | None = None
    signal: str | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "action": self.action,
            "type": self.type,
            "daemon": self.daemon,
            "id": self.id,
            "image": self.image,
        }
        for key, value in (
            ("network", self.network),
            ("network_id", self.network_id),
            ("exit_code", self.exit_code),
            ("signal", self.signal),
        ):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: _Json) -> DockerDetail:
        return cls(
            action=_text(data, "action"),
            type=_text(data, "type", "container"),
            daemon=_text(data, "daemon"),
            id=_text(data, "id"),
            image=_text(data, "image"),
            network=_opt_text(data, "network"),
            network_id=_opt_text(data, "network_id"),
            exit_code=_opt_int(data, "exit_code"),
            signal=_opt_text(data, "signal"),
        )


@dataclass(frozen=True, slots=True)
class NoteDetail:
    """``note``: a remark on the timeline (``text``, JSON key ``detail``), or
    a ``message`` about the Docker ``daemon`` whose event stream ended."""

    text: str = ""
    daemon: str = ""
    message: str = ""

    def to_json(self) -> JsonObject:
        return {
            key: value
            for key, value in (
                ("detail", self.text),
                ("daemon", self.daemon),
                ("message", self.message),
            )
            if value
        }

    @classmethod
    def from_json(cls, data: _Json) -> NoteDetail:
        return cls(_text(data, "detail"), _text(data, "daemon"), _text(data, "message"))


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

    def to_json(self) -> JsonObject:
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
    def from_json(cls, data: _Json) -> StateChange:
        """Raises ValueError for a state this version does not know."""
        return cls(
            state=StateKind(_text(data, "state")),
            bridge=_text(data, "bridge"),
            mac=_text(data, "mac"),
            port=_text(data, "port"),
            link=_text(data, "link"),
            subnet=_text(data, "subnet"),
            note=_text(data, "note"),
        )


@dataclass(frozen=True, slots=True)
class CounterSample:
    """The detail of a ``counters`` event: the kernel counters of one
    namespace that changed since its previous sample, ``seconds`` before.

    ``deltas``: counters (``ct.insert_failed``, ``snmp.Udp.RcvbufErrors``,
    ``link.eth0.rx_dropped``, ... — see :mod:`netsleuth.netns.counters`) by
    how much they rose; ``levels``: gauges (``ct.count``, ``ct.max``) at
    the time of the sample, kept when they are near their limit or beside a
    rise. An event is written only when something changed."""

    seconds: float = 0.0
    deltas: Mapping[str, int] = field(default_factory=dict)
    levels: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        out: JsonObject = {"seconds": round(self.seconds, 3), "deltas": dict(self.deltas)}
        if self.levels:
            out["levels"] = dict(self.levels)
        return out

    @classmethod
    def from_json(cls, data: _Json) -> CounterSample:
        def counts(key: str) -> dict[str, int]:
            raw = data.get(key, {})
            if not isinstance(raw, Mapping):
                raise TypeError(key)
            out = {}
            for name, value in raw.items():
                if not isinstance(name, str) or isinstance(value, bool):
                    raise TypeError(key)
                if not isinstance(value, int):
                    raise TypeError(key)
                out[name] = value
            return out

        seconds = data.get("seconds", 0.0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError("seconds")
        return cls(float(seconds), counts("deltas"), counts("levels"))


@dataclass(frozen=True, slots=True)
class DropDetail:
    """The detail of a ``drop`` event: the kernel dropped a packet (or
    ``count`` packets of one key, aggregated under a storm) with ``reason``
    (its name in the recording kernel: ``OTHERHOST``, ``NETFILTER_DROP`` ...)
    in function ``location``, in the namespace whose nsfs inode is
    ``netns_inode`` (0: unknown; the event's ``netns`` is its label) on
    ``device`` (also the event's ``ifname``). For IPv4, the packet's
    addresses (and UDP/TCP ports) when they were read; see
    :mod:`netsleuth.drops`."""

    reason: str = ""
    location: str = ""
    netns_inode: int = 0
    device: str = ""
    proto: str = ""
    saddr: str = ""
    daddr: str = ""
    sport: int = 0
    dport: int = 0
    count: int = 1

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "reason": self.reason,
            "location": self.location,
            "netns_inode": self.netns_inode,
            "device": self.device,
        }
        out.update(drop_headers(self.proto, self.saddr, self.daddr, self.sport, self.dport))
        out["count"] = self.count
        return out

    @classmethod
    def from_json(cls, data: _Json) -> DropDetail:
        count = _opt_int(data, "count")
        if count is not None and count < 1:
            raise ValueError(f"count: {count} is not a positive number of drops")
        return cls(
            reason=_text(data, "reason"),
            location=_text(data, "location"),
            netns_inode=_int(data, "netns_inode"),
            device=_text(data, "device"),
            proto=_text(data, "proto"),
            saddr=_text(data, "saddr"),
            daddr=_text(data, "daddr"),
            sport=_int(data, "sport"),
            dport=_int(data, "dport"),
            count=1 if count is None else count,
        )


def drop_headers(
    proto: str, saddr: str, daddr: str, sport: int, dport: int
) -> dict[str, str | int]:
    """The packet fields of a dropped packet that are known, as every drop
    record writes them (none for an aggregate or a drop without headers)."""
    out: dict[str, str | int] = {
        k: v for k, v in (("proto", proto), ("saddr", saddr), ("daddr", daddr)) if v
    }
    if sport or dport:
        out["sport"], out["dport"] = sport, dport
    return out


@dataclass(frozen=True, slots=True)
class RawDetail:
    """A stored detail that does not fit its kind (a corrupt row, or one
    written by another version), kept as it was read."""

    data: JsonObject = field(default_factory=dict)

    def to_json(self) -> JsonObject:
        return dict(self.data)


_KindDetail: TypeAlias = (
    LinkDetail
    | PortDetail
    | MacChange
    | OperChange
    | MtuChange
    | NeighChange
    | FdbDetail
    | RouteDetail
    | FirewallChange
    | InvariantDetail
    | StateChange
    | TargetDetail
    | EndDetail
    | DockerDetail
    | NoteDetail
    | CounterSample
    | DropDetail
)
EventDetail: TypeAlias = _KindDetail | RawDetail
"""The ``detail`` of a :class:`NetEvent`: the type :data:`DETAIL_TYPES` gives
its kind, or a :class:`RawDetail`."""

DETAIL_TYPES: Mapping[EventKind, type[_KindDetail]] = {
    EventKind.LINK_ADDED: LinkDetail,
    EventKind.LINK_REMOVED: LinkDetail,
    EventKind.PORT_JOINED: PortDetail,
    EventKind.PORT_LEFT: PortDetail,
    EventKind.MAC_CHANGED: MacChange,
    EventKind.OPER_CHANGED: OperChange,
    EventKind.MTU_CHANGED: MtuChange,
    EventKind.NEIGH_CHANGED: NeighChange,
    EventKind.FDB_ADDED: FdbDetail,
    EventKind.FDB_REMOVED: FdbDetail,
    EventKind.ROUTE_ADDED: RouteDetail,
    EventKind.ROUTE_REMOVED: RouteDetail,
    EventKind.FIREWALL_CHANGED: FirewallChange,
    EventKind.INVARIANT_VIOLATED: InvariantDetail,
    EventKind.INVARIANT_RECOVERED: InvariantDetail,
    EventKind.STATE_ENTERED: StateChange,
    EventKind.STATE_LEFT: StateChange,
    EventKind.TARGET_GONE: TargetDetail,
    EventKind.TARGET_BACK: TargetDetail,
    EventKind.TARGET_ENDED: EndDetail,
    EventKind.DOCKER: DockerDetail,
    EventKind.NOTE: NoteDetail,
    EventKind.COUNTERS: CounterSample,
    EventKind.DROP: DropDetail,
}
"""The detail type of each kind of event."""


def detail_from_json(kind: EventKind | str, data: object) -> EventDetail:
    """The detail of an event of ``kind`` from its stored JSON. What does not
    fit (not an object, a value of the wrong type, an unknown state or kind)
    becomes a :class:`RawDetail`; this never raises."""
    if not isinstance(data, dict):
        return RawDetail()
    try:
        return DETAIL_TYPES[EventKind(kind)].from_json(data)
    except (KeyError, TypeError, ValueError):
        return RawDetail(data)


_NO_DETAIL = RawDetail()  # NetEvent's default, replaced by the kind's empty detail


@dataclass(frozen=True, slots=True)
class NetEvent:
    """One network event, stamped like :class:`ProbeResult`.

    ``netns`` names where it was seen (``host`` or a target), ``ifname`` the
    interface it is about (if any), ``subject`` what it relates to (the bridge
    of a port event, the gateway address of a neighbour event, a container
    name), and ``detail`` the rest (old/new MAC, state, ...), of the type
    :data:`DETAIL_TYPES` gives the kind. An event made without a detail gets
    its kind's empty one (what reading back ``{}`` gives).
    """

    wall_ns: int
    mono_ns: int
    netns: str
    kind: EventKind
    ifname: str = ""
    subject: str = ""
    detail: EventDetail = _NO_DETAIL

    def __post_init__(self) -> None:
        if self.detail is _NO_DETAIL:
            object.__setattr__(self, "detail", detail_from_json(self.kind, {}))
