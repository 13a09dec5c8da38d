"""Build Ethernet frames carrying DNS-over-UDP/IPv4 or ARP: golden test files
and the benchmark capture are made from these, never from hand-typed hex."""

from __future__ import annotations

import socket
import struct

__all__ = ["arp_frame", "dns_frame", "ipv4_checksum", "mac_bytes", "qname_wire"]


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def qname_wire(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def ipv4_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def dns_frame(
    src_mac: str,
    dst_mac: str,
    src: str,
    dst: str,
    *,
    sport: int,
    dport: int,
    dns_id: int,
    qname: str,
    response: bool = False,
    rcode: int = 0,
    answer: str | None = None,
    qtype: int = 1,
    ttl: int = 64,
) -> bytes:
    """An Ethernet frame with one DNS query or response (one A answer if given);
    a copy after a router (NATed out) has a lower ``ttl``."""
    flags = 0x0100 | (0x8080 if response else 0) | rcode
    ancount = 1 if (response and answer) else 0
    dns = struct.pack("!HHHHHH", dns_id, flags, 1, ancount, 0, 0)
    dns += qname_wire(qname) + struct.pack("!HH", qtype, 1)
    if ancount and answer:
        dns += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(answer)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(dns), 0) + dns
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        dns_id,
        0x4000,
        ttl,
        17,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    ip = ip[:10] + struct.pack("!H", ipv4_checksum(ip)) + ip[12:]
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + b"\x08\x00" + ip + udp


def arp_frame(
    op: int, sender_mac: str, sender_ip: str, target_mac: str, target_ip: str, *, dst_mac: str = ""
) -> bytes:
    """An ARP request (op 1, broadcast unless ``dst_mac``) or reply (op 2)."""
    if not dst_mac:
        dst_mac = "ff:ff:ff:ff:ff:ff" if op == 1 else target_mac
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
    arp += mac_bytes(sender_mac) + socket.inet_aton(sender_ip)
    arp += mac_bytes(target_mac) + socket.inet_aton(target_ip)
    frame = mac_bytes(dst_mac) + mac_bytes(sender_mac) + b"\x08\x06" + arp
    return frame + b"\x00" * (60 - len(frame))
