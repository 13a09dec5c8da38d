"""Follow each DNS query across interfaces and say what happened to it.

Pure logic, no I/O: :class:`JourneyMatcher` is fed packets in (roughly) time
order and hands back finished :class:`Journey` values; ``explain`` and the
tests drive it the same way.

Matching. Sightings of one query share the DNS id and question name; they
are grouped while they fall within ``window_ns`` of the first sighting. The
earliest query sighting is the origin (client address and port, interface;
on equal timestamps an interface marked ``role=client`` wins, then the one
fed first: give per-interface files container side first).
A sighting with another source (a query) or destination (an answer) than the
origin's carries the translated address: the query left through the uplink
after MASQUERADE. An interface a capture marked ``role=uplink``, or on which
translated queries were seen before, counts as "left" even without
translation (a query that escaped NAT). A second query with the same id and name
from another client on the origin interface, or seen there again more than
``attempt_gap_ns`` after the first (a retry, or a reused id), starts a new
journey: each attempt is judged on its own.

Classification (first that applies): an answer back on the origin interface
to the origin address → answered; an answer on the translated side or
elsewhere but not back at the origin → lost on the way back; a query that
left through an interface where other queries were seen translated, itself
untranslated → escaped NAT; a query that left otherwise → NATed out but
never answered; otherwise, if the capture saw the uplink at all → never left
the bridge, else unanswered (no uplink capture).

Escaped NAT. With br_netfilter on (``bridge-nf-call-iptables=1``, as on
every Docker host) a query the bridge floods — one sent to a gateway MAC no
port owns — passes netfilter as bridged traffic and gets a conntrack entry
without NAT (it was never routed, so no masquerade rule matched), alive for
the UDP timeout (30 s). A later query from the same address and port matches
that entry, is routed out untranslated and cannot be answered. So for an
escaped query the matcher looks for an earlier query with the same
addresses and ports that never left the bridge within ``conntrack_timeout_ns``
and records how long before it was (``reused_entry_age_ns``).

Stale gateway. A bridge's MAC moves when a port with a smaller MAC joins or
the port whose MAC it had leaves. Frames to a departed MAC are flooded to no
one; frames to the previous MAC while a port still owns it are handed up to
the host marked "for another host" and dropped — unless they came in through
that port (measured in the lab: with three containers, the two not owning the
old MAC lost every query for the whole stay of a joining low-MAC port, the
owner none). For a query that never left, the frame's destination MAC is
compared with the bridge's MAC at that moment: from a watch store's
``mac-changed`` events when given (exact), else from the capture's ARP
traffic of the gateway. The ARP the gateway sent *before* the query is what
the client used, so it proves nothing; the first one *after* it shows what
the bridge's MAC had become — so such journeys are held back until the next
MAC announcement (or the end of the capture) before they are handed out.
The gateway address is taken from the ARP traffic of the client (its most
frequent ARP peer) unless given.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from netsleuth.causes import CAUSES
from netsleuth.model import EventKind, Finding, MacChange, NetEvent, PortDetail, Severity
from netsleuth.packets.model import (
    HANDSHAKE_ID,
    ArpPacket,
    DnsPacket,
    Fate,
    Hop,
    Interface,
    Journey,
    MacVerdict,
    Packet,
    endpoint_str,
    family_of,
    mac_str,
    qname_str,
)

__all__ = [
    "DEFAULT_CONNTRACK_TIMEOUT_NS",
    "BridgeHistory",
    "JourneyMatcher",
    "MatchSummary",
    "bridge_history",
    "escaped_nat_finding",
    "match",
    "stale_gateway_finding",
]

_ANSWERED = str(Fate.ANSWERED)
_ROLE_RANK = {"client": 0, "bridge": 2, "uplink": 3}
DEFAULT_WINDOW_NS = 5_000_000_000
DEFAULT_ATTEMPT_GAP_NS = 500_000_000
DEFAULT_CONNTRACK_TIMEOUT_NS = 30_000_000_000  # nf_conntrack_udp_timeout: an unanswered entry
_MAX_FLOODED = 100_000
_MAX_HELD = 200_000
_MAX_ARP_PEERS = 100_000
_MAX_MAC_CHANGES = 1_000_000


@dataclass(frozen=True, slots=True)
class BridgeHistory:
    """What a watch store recorded about one bridge: its MAC over time and which
    port owned which MAC when. Times are wall-clock ns, sorted."""

    bridge: str
    mac_times: tuple[int, ...] = ()
    macs: tuple[str, ...] = ()  # bridge MAC from mac_times[i] on
    ports: tuple[tuple[str, str, int, int | None], ...] = ()  # (mac, port, joined, left)

    def mac_at(self, ts_ns: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self.mac_times, ts_ns)
        if i == 0:
            return None
        return self.macs[i - 1], self.mac_times[i - 1]

    def owner_at(self, mac: str, ts_ns: int) -> tuple[bool | None, str]:
        """(True, port) if a port owned ``mac`` at ``ts_ns``, (False, port) if
        the last port that owned it had left, (None, "") if the store never saw it."""
        last: tuple[str, int, int | None] | None = None
        for m, port, joined, left in self.ports:
            if m != mac or joined > ts_ns:
                continue
            if left is None or left > ts_ns:
                return True, port
            if last is None or joined >= last[1]:
                last = (port, joined, left)
        if last is not None:
            return False, last[0]
        return None, ""


def bridge_history(events: Iterable[NetEvent], bridge: str = "") -> BridgeHistory | None:
    """Build a :class:`BridgeHistory` from store events (``mac-changed`` of the
    bridge with detail old/new; ``port-joined``/``port-left`` with detail mac).
    Without ``bridge``, the one bridge the port events name is used."""
    evs = sorted(events, key=lambda e: e.wall_ns)
    if not bridge:
        bridges = {e.subject for e in evs if e.kind is EventKind.PORT_JOINED and e.subject}
        bridges |= {
            e.ifname for e in evs if isinstance(e.detail, MacChange) and e.detail.kind == "bridge"
        }
        if len(bridges) != 1:
            return None
        bridge = bridges.pop()
    times: list[int] = []
    macs: list[str] = []
    open_ports: dict[str, tuple[str, int]] = {}
    ports: list[tuple[str, str, int, int | None]] = []
    for e in evs:
        detail = e.detail
        if isinstance(detail, MacChange) and e.ifname == bridge:
            new, old = detail.new.lower(), detail.old.lower()
            if not times and old:
                times.append(0)
                macs.append(old)
            if new:
                times.append(e.wall_ns)
                macs.append(new)
        elif e.kind in (EventKind.PORT_JOINED, EventKind.PORT_LEFT) and e.subject == bridge:
            port_mac = detail.mac.lower() if isinstance(detail, PortDetail) else ""
            if e.kind is EventKind.PORT_JOINED:
                open_ports[e.ifname] = (port_mac, e.wall_ns)
            else:
                mac, joined = open_ports.pop(e.ifname, (port_mac, 0))
                ports.append((mac, e.ifname, joined, e.wall_ns))
    ports.extend((mac, port, joined, None) for port, (mac, joined) in open_ports.items())
    return BridgeHistory(bridge, tuple(times), tuple(macs), tuple(ports))


@dataclass(slots=True)
class MatchSummary:
    """Counts over all journeys, kept whatever is retained."""

    journeys: int = 0
    by_verdict: dict[str, int] = field(default_factory=lambda: {str(v): 0 for v in Fate})
    stale_gateway: int = 0
    orphan_answers: int = 0
    # "udp/ipv4", "tcp/ipv6", ... and "tcp-handshake/ipv4" (connections that
    # carried no query) -> verdict -> journeys
    by_transport: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, j: Journey) -> None:
        self.journeys += 1
        self.by_verdict[str(j.verdict)] += 1
        if j.mac is not None and j.mac.stale_gateway:
            self.stale_gateway += 1
        kind = f"{'tcp-handshake' if j.handshake else j.transport}/{j.family}"
        self.count_kind(kind, str(j.verdict), 1)

    def count_kind(self, kind: str, verdict: str, n: int) -> None:
        if n:
            counts = self.by_transport.setdefault(kind, {str(v): 0 for v in Fate})
            counts[verdict] += n


class _Group:
    """The sightings of one query so far (mutable, private to the matcher)."""

    __slots__ = ("done", "first_ts", "iface", "key", "sightings", "sport", "src")

    def __init__(  # noqa: PLR0917 - built once per query on the hot path
        self, key: tuple[int, bytes], ts: int, iface: int, src: bytes, sport: int, pkt: DnsPacket
    ) -> None:
        self.key = key
        self.first_ts = ts
        self.iface = iface
        self.src = src
        self.sport = sport
        self.sightings = [pkt]
        self.done = False  # answered and counted; only a tombstone absorbing late sightings


class JourneyMatcher:
    """Feed packets with :meth:`feed`; call :meth:`finish` at the end.

    ``interfaces`` may grow while packets are fed (readers discover them).
    With ``keep_answered=False`` a query answered at its origin is only
    counted, not handed out, and its packets are dropped at once: memory then
    grows with the queries in flight and the failed ones, not with the rate.
    """

    def __init__(
        self,
        interfaces: Sequence[Interface],
        *,
        window_ns: int = DEFAULT_WINDOW_NS,
        attempt_gap_ns: int = DEFAULT_ATTEMPT_GAP_NS,
        gateway: bytes | None = None,
        history: BridgeHistory | None = None,
        keep_answered: bool = True,
        conntrack_timeout_ns: int = DEFAULT_CONNTRACK_TIMEOUT_NS,
    ) -> None:
        self.interfaces = interfaces
        self.conntrack_timeout_ns = conntrack_timeout_ns
        self.keep_answered = keep_answered
        self.window_ns = window_ns
        self.attempt_gap_ns = attempt_gap_ns
        self._slack = window_ns // 8
        self.gateway = gateway
        self.history = history
        self.summary = MatchSummary()
        self._pending: dict[tuple[int, bytes], _Group] = {}
        self._order: deque[_Group] = deque()  # in order of their first sighting
        self._next_evict = 0
        self._uplink_seen = False
        self._uplink_ifaces: set[int] = set()  # where translated queries were seen
        # ARP: per sender IP the MAC changes [(ts, mac)], and who talks to whom
        self._arp_times: dict[bytes, list[int]] = {}
        self._arp_macs: dict[bytes, list[bytes]] = {}
        self._arp_changes = 0
        self._peers: dict[bytes, dict[bytes, int]] = {}
        self._peer_pairs = 0
        self._held: deque[tuple[Journey, DnsPacket, list[DnsPacket]]] = deque()
        # (src, sport, dst, dport) of queries that never left the bridge -> when
        self._never_left: dict[tuple[bytes, int, bytes, int], int] = {}

    # -- feeding ------------------------------------------------------------
    def feed(self, pkt: Packet) -> list[Journey]:
        """Take one packet; returns the journeys it finished (usually none)."""
        return list(self.feed_all((pkt,)))

    def feed_all(self, packets: Iterable[Packet]) -> Iterator[Journey]:
        """Take packets; yields journeys as they finish (call :meth:`finish` after).

        The hot loop of ``explain``: locals instead of attributes, tuple
        unpacking instead of field access; queries answered at their origin
        and orphan answers are counted in locals and added to :attr:`summary`
        when the iteration ends.
        """
        pending = self._pending
        pending_get = pending.get
        order = self._order
        append_order = order.append
        window = self.window_ns
        gap = self.attempt_gap_ns
        keep_answered = self.keep_answered
        dns_type = DnsPacket
        group_type = _Group
        next_evict = self._next_evict
        # counted here, added to the summary in the end (answered: UDP/IPv4)
        answered = answered_udp6 = answered_tcp4 = answered_tcp6 = orphans = 0
        try:
            for pkt in packets:
                ts = pkt[0]
                if ts >= next_evict:
                    if order:
                        done: list[Journey] = []
                        self._evict(ts - window, done)
                        yield from done
                    next_evict = self._next_evict
                if type(pkt) is not dns_type:
                    assert type(pkt) is ArpPacket
                    if self._arp(pkt) and self._held:
                        done = []
                        self._release(ts, done)
                        yield from done
                    continue
                (
                    _ts,
                    iface,
                    _sm,
                    _dm,
                    src,
                    dst,
                    sport,
                    dport,
                    dns_id,
                    flags,
                    qname,
                    _qt,
                    tr,
                    _ttl,
                ) = pkt
                key = (dns_id, qname)
                group = pending_get(key)
                if not flags & 0x8000:  # a query
                    if group is None:
                        group = pending[key] = group_type(key, ts, iface, src, sport, pkt)
                        if not order:
                            next_evict = self._next_evict = ts + window
                        append_order(group)
                    elif group.iface == iface and (
                        group.src != src or group.sport != sport or ts - group.first_ts > gap
                    ):
                        # another client, or a new attempt (retry, reused id): a new journey
                        done = []
                        moved = _take_client(group, src, sport)
                        self._close(group, done)
                        group = pending[key] = group_type(key, ts, iface, src, sport, pkt)
                        if moved:  # its sightings on other interfaces, seen before this one
                            group.sightings = [*moved, pkt]
                        append_order(group)
                        yield from done
                    elif not group.done:
                        group.sightings.append(pkt)
                elif group is None:
                    orphans += 1
                elif group.done:
                    pass
                elif (
                    iface == group.iface
                    and dst == group.src
                    and dport == group.sport
                    and not keep_answered
                    and dns_id != HANDSHAKE_ID
                ):
                    # answered at its origin and not to be kept: count it, drop its packets
                    if not self._uplink_seen:
                        self._learn_uplink(group)
                    group.done = True
                    group.sightings = []
                    if tr == 17:
                        if len(dst) == 4:
                            answered += 1
                        else:
                            answered_udp6 += 1
                    elif len(dst) == 4:
                        answered_tcp4 += 1
                    else:
                        answered_tcp6 += 1
                else:
                    group.sightings.append(pkt)
        finally:
            s = self.summary
            total = answered + answered_udp6 + answered_tcp4 + answered_tcp6
            s.journeys += total
            s.by_verdict[_ANSWERED] += total
            s.count_kind("udp/ipv4", _ANSWERED, answered)
            s.count_kind("udp/ipv6", _ANSWERED, answered_udp6)
            s.count_kind("tcp/ipv4", _ANSWERED, answered_tcp4)
            s.count_kind("tcp/ipv6", _ANSWERED, answered_tcp6)
            s.orphan_answers += orphans

    def finish(self) -> list[Journey]:
        done: list[Journey] = []
        self._evict(None, done)
        self._release(None, done)
        return done

    def _evict(self, before: int | None, done: list[Journey]) -> None:
        order = self._order
        pending = self._pending
        pending_get = pending.get
        popleft = order.popleft
        limit = before if before is not None else 1 << 127
        while order and order[0].first_ts < limit:
            group = popleft()
            key = group.key
            if pending_get(key) is group:  # else: closed when a colliding query opened another
                del pending[key]
                if not group.done:
                    self._close(group, done)
        # look again once the oldest is due, but not more often than every window/8
        self._next_evict = (
            max(order[0].first_ts + self.window_ns, (before or 0) + self.window_ns + self._slack)
            if order
            else 0
        )

    def _arp(self, pkt: ArpPacket) -> bool:
        """Learn from one ARP packet; True if a sender announced a new MAC."""
        ip = pkt.sender_ip
        macs = self._arp_macs.get(ip)
        changed = False
        if macs is None:
            if self._arp_changes < _MAX_MAC_CHANGES:
                self._arp_macs[ip] = [pkt.sender_mac]
                self._arp_times[ip] = [pkt.ts_ns]
                self._arp_changes += 1
                changed = True
        elif macs[-1] != pkt.sender_mac and self._arp_changes < _MAX_MAC_CHANGES:
            macs.append(pkt.sender_mac)
            self._arp_times[ip].append(pkt.ts_ns)
            self._arp_changes += 1
            changed = True
        target = pkt.target_ip
        if target != ip and self._peer_pairs < _MAX_ARP_PEERS:
            for a, b in ((ip, target), (target, ip)):
                peers = self._peers.setdefault(a, {})
                if b not in peers:
                    self._peer_pairs += 1
                peers[b] = peers.get(b, 0) + 1
        return changed

    def _release(self, before: int | None, done: list[Journey]) -> None:
        """Give the MAC verdict to held journeys older than ``before`` (all if None)."""
        held = self._held
        while held and (before is None or held[0][0].ts_ns < before or len(held) > _MAX_HELD):
            journey, origin, queries = held.popleft()
            journey = replace(journey, mac=self._mac_verdict(origin, queries))
            self.summary.add(journey)
            done.append(journey)

    # -- classification -----------------------------------------------------
    def _rank(self, iface: int) -> int:
        if 0 <= iface < len(self.interfaces):
            return _ROLE_RANK.get(self.interfaces[iface].role, 1)
        return 1

    def _is_uplink(self, iface: int) -> bool:
        if iface in self._uplink_ifaces:
            return True
        return 0 <= iface < len(self.interfaces) and self.interfaces[iface].role == "uplink"

    def _name(self, iface: int) -> tuple[str, str]:
        if 0 <= iface < len(self.interfaces):
            i = self.interfaces[iface]
            return i.name, i.netns
        return f"if{iface}", ""

    def _learn_uplink(self, group: _Group) -> None:
        """A translated query of ``group`` shows the capture saw the uplink."""
        first = group.sightings[0] if group.sightings else None
        for p in group.sightings:
            if (
                not p.flags & 0x8000
                and (p.src != group.src or p.sport != group.sport)
                and (first is None or _routed(p, first))
            ):
                self._uplink_seen = True
                self._uplink_ifaces.add(p.iface)

    def _close(self, group: _Group, done: list[Journey]) -> None:
        if group.done:
            return
        s = group.sightings
        queries = [p for p in s if not p.flags & 0x8000]
        # a frame crossing port and bridge keeps one timestamp: on a tie the
        # client-side interface wins, then the one fed first
        origin = min(queries, key=lambda p: (p.ts_ns, self._rank(p.iface)))
        o_src, o_port, o_if = origin.src, origin.sport, origin.iface
        others = _other_clients(queries, origin)
        if others:
            # (a sighting may be fed after its group closed: then it starts a group
            # of its own; those fed before are split off here)
            # other clients' queries with the same id and name: each its own journey
            s, theirs = _split(s, origin, others)
            for sightings in theirs.values():
                if any(not p.flags & 0x8000 for p in sightings):
                    first = sightings[0]
                    other = _Group(
                        group.key, first.ts_ns, first.iface, first.src, first.sport, first
                    )
                    other.sightings = sightings
                    self._close(other, done)
            queries = [p for p in s if not p.flags & 0x8000]
        hops: list[Hop] = []
        answered: DnsPacket | None = None
        left_q: DnsPacket | None = None
        up_answer: DnsPacket | None = None
        back_elsewhere = False
        for p in sorted(s, key=lambda p: p.ts_ns):
            uplink = self._is_uplink(p.iface)
            if p.flags & 0x8000:
                nat = p.dst != o_src or p.dport != o_port
                if not nat and p.iface == o_if:
                    if answered is None:
                        answered = p
                elif not nat and not uplink:
                    back_elsewhere = True
                elif up_answer is None:
                    up_answer = p
            else:
                # only a routed copy can carry a translation: another client's query
                # with the same id and name (flooded or bridged) kept its TTL
                nat = (p.src != o_src or p.sport != o_port) and _routed(p, origin)
                if nat:
                    self._uplink_ifaces.add(p.iface)
                if (nat or uplink) and left_q is None and p is not origin and _routed(p, origin):
                    left_q = p
            name, netns = self._name(p.iface)
            hops.append(
                Hop(
                    name,
                    netns,
                    p.ts_ns,
                    bool(p.flags & 0x8000),
                    endpoint_str(p.src, p.sport),
                    endpoint_str(p.dst, p.dport),
                    mac_str(p.dst_mac),
                    nat,
                )
            )
        if left_q is not None or self._is_uplink(o_if):
            self._uplink_seen = True
        handshake = origin.dns_id == HANDSHAKE_ID
        if handshake and answered is not None and not answered.flags & 0xF:
            return  # the SYN-ACK came back: the connection's queries are the journeys
        rcode: int | None = None
        latency: int | None = None
        reused_age: int | None = None
        addresses = (o_src, o_port, origin.dst, origin.dport)
        if answered is not None:
            verdict = Fate.ANSWERED
            rcode = answered.flags & 0xF
            latency = answered.ts_ns - origin.ts_ns
        elif up_answer is not None or back_elsewhere:
            verdict = Fate.LOST_ON_RETURN
            if up_answer is not None:
                rcode = up_answer.flags & 0xF
        elif left_q is not None:
            escaped = (
                left_q.src == o_src
                and left_q.sport == o_port
                and left_q.iface in self._uplink_ifaces
            )
            verdict = Fate.ESCAPED_NAT if escaped else Fate.NAT_UNANSWERED
            if escaped:
                before = self._never_left.get(addresses)
                if before is not None and 0 < origin.ts_ns - before <= self.conntrack_timeout_ns:
                    reused_age = origin.ts_ns - before
        else:
            verdict = Fate.NEVER_LEFT_BRIDGE if self._uplink_known() else Fate.UNANSWERED
            self._remember_never_left(addresses, origin.ts_ns)
        journey = Journey(
            ts_ns=origin.ts_ns,
            dns_id=-1 if handshake else origin.dns_id,
            qname="" if handshake else qname_str(origin.qname),
            qtype=origin.qtype,
            client=endpoint_str(o_src, o_port),
            server=endpoint_str(origin.dst, origin.dport),
            origin=self._name(o_if)[0],
            nat_source=endpoint_str(left_q.src, left_q.sport) if left_q is not None else "",
            verdict=verdict,
            rcode=rcode,
            latency_ns=latency,
            hops=tuple(hops),
            reused_entry_age_ns=reused_age,
            transport="tcp" if origin.transport == 6 else "udp",
            family=family_of(o_src),
            handshake=handshake,
            truncated=answered is not None and bool(answered.flags & 0x0200),
        )
        if verdict in (Fate.NEVER_LEFT_BRIDGE, Fate.UNANSWERED):
            # the gateway's next ARP (or the end) tells the bridge's MAC: hold it till then
            self._held.append((journey, origin, queries))
            if len(self._held) > _MAX_HELD:  # bounded, even if no ARP ever comes
                self._release(self._held[0][0].ts_ns + 1, done)
        else:
            self.summary.add(journey)
            done.append(journey)

    def _remember_never_left(self, addresses: tuple[bytes, int, bytes, int], ts: int) -> None:
        seen = self._never_left
        seen[addresses] = ts
        if len(seen) > _MAX_FLOODED:  # bounded: forget what conntrack has forgotten too
            horizon = ts - self.conntrack_timeout_ns
            self._never_left = {k: t for k, t in seen.items() if t >= horizon}
            while len(self._never_left) > _MAX_FLOODED:
                del self._never_left[next(iter(self._never_left))]

    def _uplink_known(self) -> bool:
        return self._uplink_seen or any(i.role == "uplink" for i in self.interfaces)

    def gateway_for(self, client: bytes) -> bytes | None:
        if self.gateway is not None:
            return self.gateway
        peers = self._peers.get(client)
        if not peers:
            return None
        return max(peers.items(), key=lambda kv: (kv[1], kv[0]))[0]

    def _mac_verdict(self, origin: DnsPacket, queries: list[DnsPacket]) -> MacVerdict | None:
        dst = origin.dst_mac or next((q.dst_mac for q in queries if q.dst_mac), b"")
        if not dst:
            return None
        dst_text = mac_str(dst)
        ts = origin.ts_ns
        gateway = self.gateway_for(origin.src)
        former = False
        bridge_mac = ""
        since: int | None = None
        source = ""
        if gateway is not None and gateway in self._arp_macs:
            times = self._arp_times[gateway]
            macs = self._arp_macs[gateway]
            i = bisect.bisect_right(times, ts)
            former = dst in macs[:i]
            if i < len(macs):  # the first change announced after the query
                bridge_mac, since, source = mac_str(macs[i]), times[i], "arp"
            elif i > 0:
                bridge_mac, since, source = mac_str(macs[i - 1]), times[i - 1], "arp"
        port_owned: bool | None = None
        port = ""
        if self.history is not None:
            at = self.history.mac_at(ts)
            if at is not None:
                bridge_mac, since, source = at[0], at[1], "store"
                former = (
                    former
                    or dst_text
                    in self.history.macs[: bisect.bisect_right(self.history.mac_times, ts)]
                )
            port_owned, port = self.history.owner_at(dst_text, ts)
        # A frame to a MAC a port still owns is handed up to the host, which takes
        # it only if it came in through that very port (else it is "for another
        # host" and dropped): so only the owner's own port makes it harmless.
        through_owner = port_owned is True and port == self._name(origin.iface)[0]
        if not bridge_mac:
            stale = False
        elif source == "store":
            stale = bridge_mac != dst_text and not through_owner
        else:
            stale = bridge_mac != dst_text and former and not through_owner
        return MacVerdict(
            dst_mac=dst_text,
            bridge_mac=bridge_mac,
            bridge_mac_since_ns=since,
            bridge_mac_source=source,
            former_bridge_mac=former,
            port_owned=port_owned,
            port=port,
            stale_gateway=stale,
        )


def _take_client(group: _Group, src: bytes, sport: int) -> list[DnsPacket]:
    """Remove from ``group`` the sightings of another client's query (from
    ``src``:``sport``, and the answers to it) and return them."""
    if group.done or (group.src == src and group.sport == sport):
        return []
    moved = [
        p
        for p in group.sightings
        if ((p.dst, p.dport) if p.flags & 0x8000 else (p.src, p.sport)) == (src, sport)
    ]
    if moved:
        group.sightings = [p for p in group.sightings if p not in moved]
    return moved


def _other_clients(queries: list[DnsPacket], origin: DnsPacket) -> set[tuple[bytes, int]]:
    """Endpoints of queries from another address or port than ``origin`` that
    were not routed: not a translation of it, another client's own query."""
    return {
        (p.src, p.sport)
        for p in queries
        if (p.src != origin.src or p.sport != origin.sport) and not _routed(p, origin)
    }


def _split(
    sightings: list[DnsPacket], origin: DnsPacket, others: set[tuple[bytes, int]]
) -> tuple[list[DnsPacket], dict[tuple[bytes, int], list[DnsPacket]]]:
    """The sightings of ``origin``'s query, and those of each other client's:
    its queries and answers by address and port, and translated ones by the
    port (MASQUERADE keeps the source port unless it clashes)."""
    by_port = {port: ep for ep, port in ((ep, ep[1]) for ep in others) if port != origin.sport}
    mine: list[DnsPacket] = []
    theirs: dict[tuple[bytes, int], list[DnsPacket]] = {}
    for p in sightings:
        ep = (p.dst, p.dport) if p.flags & 0x8000 else (p.src, p.sport)
        if ep not in others:
            if ep[0] == origin.src and ep[1] == origin.sport:
                mine.append(p)
                continue
            found = by_port.get(ep[1])
            if found is None:
                mine.append(p)
                continue
            ep = found
        theirs.setdefault(ep, []).append(p)
    return mine, theirs


def _routed(p: DnsPacket, origin: DnsPacket) -> bool:
    """Can ``p`` be ``origin`` after a router? Routing lowers the TTL (hop
    limit); a copy the bridge only forwarded or flooded keeps it. Unknown
    TTLs (0) cannot tell, so then yes."""
    return not (p.ttl and origin.ttl and p.ttl >= origin.ttl)


def match(
    packets: Iterable[Packet],
    interfaces: Sequence[Interface],
    *,
    window_ns: int = DEFAULT_WINDOW_NS,
    gateway: bytes | None = None,
    history: BridgeHistory | None = None,
    conntrack_timeout_ns: int = DEFAULT_CONNTRACK_TIMEOUT_NS,
) -> Iterator[Journey]:
    """All journeys of ``packets``, as they finish."""
    matcher = JourneyMatcher(
        interfaces,
        window_ns=window_ns,
        gateway=gateway,
        history=history,
        conntrack_timeout_ns=conntrack_timeout_ns,
    )
    yield from matcher.feed_all(packets)
    yield from matcher.finish()


def stale_gateway_finding(journeys: Iterable[Journey], bridge: str = "") -> Finding | None:
    """Name the stale-gateway signature if any query carries it."""
    stale = [j for j in journeys if j.mac is not None and j.mac.stale_gateway]
    if not stale:
        return None
    dst_macs: dict[str, int] = {}
    ports: set[str] = set()
    bridge_macs: set[str] = set()
    for j in stale:
        assert j.mac is not None
        dst_macs[j.mac.dst_mac] = dst_macs.get(j.mac.dst_mac, 0) + 1
        bridge_macs.add(j.mac.bridge_mac)
        if j.mac.port:
            ports.add(j.mac.port)
    subject = bridge or "the bridge"
    text = CAUSES["bridge-mac-flap"]
    return Finding(
        rule="stale-gateway",
        severity=Severity.CRITICAL,
        subject=subject,
        title=(
            f"{len(stale)} DNS queries were sent to a gateway MAC the bridge no longer had "
            "and never left the bridge"
        ),
        evidence={
            "queries": len(stale),
            "first_ns": min(j.ts_ns for j in stale),
            "last_ns": max(j.ts_ns for j in stale),
            "destination_macs": dst_macs,
            "bridge_macs_then": sorted(bridge_macs),
            "departed_ports": sorted(ports),
        },
        why=text.finding_why("stale-gateway"),
        fix=text.finding_fix("stale-gateway", subject=subject, bridge=bridge or "BRIDGE"),
        cause=text.id,
    )


def escaped_nat_finding(journeys: Iterable[Journey]) -> Finding | None:
    """Name queries that left the uplink untranslated, and, when the capture
    shows it, the un-NATed conntrack entry they reused."""
    escaped = [j for j in journeys if j.verdict is Fate.ESCAPED_NAT]
    if not escaped:
        return None
    ages = sorted(j.reused_entry_age_ns for j in escaped if j.reused_entry_age_ns is not None)
    evidence: dict[str, object] = {
        "queries": len(escaped),
        "reusing_a_never_left_query_entry": len(ages),
        "first_ns": min(j.ts_ns for j in escaped),
        "last_ns": max(j.ts_ns for j in escaped),
        "clients": sorted({j.client for j in escaped})[:20],
    }
    if ages:
        text = CAUSES["stale-conntrack-nat"]
        evidence["entry_age_s_median"] = round(ages[len(ages) // 2] / 1e9, 3)
        evidence["entry_age_s_max"] = round(ages[-1] / 1e9, 3)
        return Finding(
            rule="stale-conntrack-entry",
            severity=Severity.WARNING,
            subject="conntrack",
            title=(
                f"{len(escaped)} DNS queries left the uplink without NAT; {len(ages)} of them "
                "reused the conntrack entry of an earlier query from the same port that never "
                "left the bridge"
            ),
            evidence=evidence,
            why=text.finding_why("stale-conntrack-entry"),
            fix=text.fix_for(bridge="BRIDGE"),
            cause=text.id,
        )
    text = CAUSES["nat-missing"]
    return Finding(
        rule="escaped-nat",
        severity=Severity.WARNING,
        subject="nat",
        title=f"{len(escaped)} DNS queries left the uplink without NAT where others were NATed",
        evidence=evidence,
        why=text.finding_why("escaped-nat"),
        fix=text.finding_fix("escaped-nat"),
        cause=text.id,
    )
