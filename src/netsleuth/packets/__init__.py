"""Packet journeys: where did each DNS query go, and where did it stop?

Data moves one way:

- ``capture`` (:mod:`.capture`): AF_PACKET sockets, each opened inside its
  interface's namespace with a DNS+ARP BPF filter, drained by one loop into a
  pcapng file (:mod:`.writer`) with one interface block per interface, named,
  with its namespace and role.
- ``reader`` (:mod:`.reader`): pcap/pcapng files (ours, tcpdump's,
  Wireshark's) mapped and walked with ``struct``; :mod:`.decode` turns each
  frame (Ethernet, Linux cooked v1/v2, raw IPv4) into a :class:`DnsPacket` or
  :class:`ArpPacket`; everything else is counted in :class:`ReadStats`.
- ``journey`` (:mod:`.journey`): pure logic. :class:`JourneyMatcher` groups
  the sightings of each query across interfaces (DNS id + name + time window,
  following MASQUERADE), classifies it (:class:`Fate`), and for queries
  that never left the bridge compares the frame's destination MAC with the
  bridge's MAC of that moment (ARP in the capture, or a watch store via
  :class:`BridgeHistory`): the stale-gateway signature.

- ``explain`` (:mod:`.explain`): the whole read → match → classify pass as
  one call, returning an :class:`Explanation` (counts, the failed journeys,
  the stale-gateway :class:`~netsleuth.model.Finding`) and, given the
  kernel's drops, which drop ended each lost query (:mod:`.drops`; recorded
  next to a capture by :mod:`.droprecord`, ``capture --drops``).

``netsleuth capture`` and ``netsleuth explain`` are thin layers over these.
"""

from netsleuth.packets import accel as _accel  # noqa: F401 - first: a stale build never runs
from netsleuth.packets.capture import (
    CaptureResult,
    CaptureSpec,
    IfaceCount,
    capture,
    dns_arp_filter,
    lab_specs,
    open_capture_socket,
)
from netsleuth.packets.explain import Explanation, explain
from netsleuth.packets.journey import (
    BridgeHistory,
    JourneyMatcher,
    MatchSummary,
    bridge_history,
    match,
    stale_gateway_finding,
)
from netsleuth.packets.model import (
    ArpPacket,
    DnsPacket,
    Fate,
    Hop,
    Interface,
    Journey,
    MacVerdict,
    Packet,
    ReadStats,
    ip_str,
    mac_str,
    qname_str,
)
from netsleuth.packets.reader import CaptureReader, read_captures
from netsleuth.packets.writer import PcapngWriter, pcap_bytes

__all__ = [
    "ArpPacket",
    "BridgeHistory",
    "CaptureReader",
    "CaptureResult",
    "CaptureSpec",
    "DnsPacket",
    "Explanation",
    "Fate",
    "Hop",
    "IfaceCount",
    "Interface",
    "Journey",
    "JourneyMatcher",
    "MacVerdict",
    "MatchSummary",
    "Packet",
    "PcapngWriter",
    "ReadStats",
    "bridge_history",
    "capture",
    "dns_arp_filter",
    "explain",
    "ip_str",
    "lab_specs",
    "mac_str",
    "match",
    "open_capture_socket",
    "pcap_bytes",
    "qname_str",
    "read_captures",
    "stale_gateway_finding",
]
