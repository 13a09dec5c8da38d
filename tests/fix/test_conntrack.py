"""Which conntrack entries a stale gateway left behind: pure decision logic."""

from __future__ import annotations

import ipaddress
import socket

from netsleuth.fix.conntrack import CtEntry, leftovers

LAB = [ipaddress.IPv4Network("198.18.0.0/24")]
UDP = socket.IPPROTO_UDP


def entry(src: str, dst: str, sport: int, *, reply_dst: str = "", replied: bool = False) -> CtEntry:
    return CtEntry(UDP, src, dst, sport, 53, reply_dst or src, replied)


NATTED = entry("198.18.0.10", "198.18.255.2", 4000, reply_dst="198.18.255.1", replied=True)
FLOODED = entry("198.18.0.10", "198.18.255.2", 5000)


def test_an_unanswered_entry_without_nat_beside_natted_ones_is_a_leftover() -> None:
    assert leftovers([NATTED, FLOODED], LAB) == [FLOODED]


def test_answered_local_and_foreign_entries_are_kept() -> None:
    kept = [
        entry("198.18.0.10", "198.18.255.2", 5001, replied=True),  # answered without NAT
        entry("198.18.0.10", "198.18.0.11", 5002),  # container to container
        entry("198.18.9.10", "198.18.255.2", 5003),  # not from the bridge's subnet
        entry("198.18.0.10", "198.18.255.2", 5004, reply_dst="198.18.255.1"),  # NATed, waiting
    ]
    assert leftovers([NATTED, *kept], LAB) == []


def test_a_routed_subnet_has_no_leftovers() -> None:
    # no entry from the subnet is translated: unanswered ones are ordinary connections
    assert leftovers([FLOODED, entry("198.18.0.10", "198.18.255.2", 6000)], LAB) == []
    assert leftovers([NATTED, FLOODED], []) == []
