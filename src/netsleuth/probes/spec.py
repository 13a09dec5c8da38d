"""Probe specifications as users write them, parsed into :class:`ProbeSpec`.

- ``dns:SERVER/NAME[/TYPE]``  one query to one server (dnspython builds it)
- ``dns:NAME[/TYPE]``         the same to each nameserver of the target's resolv.conf
- ``.../edns=SIZE``           either of them with EDNS0 offering a SIZE-byte UDP
                              buffer (512-65535; without it answers stop at 512
                              bytes, truncated): large answers, e.g. to find an
                              MTU black hole
- ``resolve:NAME``            the target's system resolver (getaddrinfo)
- ``tcp:HOST:PORT``           a TCP connect
- ``icmp:HOST``               an ICMP echo
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Literal

import dns.name
import dns.rdatatype

from netsleuth.errors import InvalidArgument

__all__ = ["ProbeKind", "ProbeSpec", "expand_dns_servers", "parse_probe", "parse_resolv_conf"]

ProbeKind = Literal["dns", "resolve", "tcp", "icmp"]

EDNS_MIN, EDNS_MAX = 512, 65535

_EXAMPLES = (
    "dns:198.18.255.2/www.lab.test/A, dns:example.org, dns:example.org/TXT/edns=4096, "
    "resolve:example.org, "
    "tcp:198.18.255.2:53, icmp:198.18.0.1"
)


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    kind: ProbeKind
    name: str = ""
    server: str = ""
    rdtype: str = "A"
    port: int = 0
    edns: int = 0
    """DNS: the EDNS0 UDP buffer size offered (0: a plain query, no EDNS)."""

    @property
    def text(self) -> str:
        """Canonical spec text, as stored (one series per probe and server);
        ``/edns=SIZE`` only when set, so older texts are unchanged."""
        if self.kind == "dns":
            base = (
                f"dns:{self.server}/{self.name}/{self.rdtype}"
                if self.server
                else (f"dns:{self.name}/{self.rdtype}")
            )
            return f"{base}/edns={self.edns}" if self.edns else base
        if self.kind == "resolve":
            return f"resolve:{self.name}"
        if self.kind == "tcp":
            return f"tcp:{self.server}:{self.port}"
        return f"icmp:{self.server}"


def _bad(text: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"probe {text!r}: {why} (examples: {_EXAMPLES})")


def _ip(text: str, value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise _bad(text, f"{value!r} is not an IPv4 address") from None


def parse_probe(text: str) -> ProbeSpec:
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise _bad(text, "expected KIND:ARGS")
    if kind == "dns":
        parts = rest.split("/")
        server = ""
        if len(parts) >= 2 and _looks_like_ip(parts[0]):
            server = _ip(text, parts.pop(0))
        edns = 0
        if len(parts) >= 2 and parts[-1].startswith("edns="):
            edns = _edns(text, parts.pop().removeprefix("edns="))
        if not parts or len(parts) > 2 or not parts[0]:
            raise _bad(text, "expected dns:[SERVER/]NAME[/TYPE][/edns=SIZE]")
        name = parts[0]
        try:
            dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise _bad(text, f"bad name: {exc}") from None
        rdtype = parts[1].upper() if len(parts) == 2 else "A"
        try:
            dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException:
            raise _bad(text, f"unknown record type {rdtype!r}") from None
        return ProbeSpec("dns", name=name, server=server, rdtype=rdtype, edns=edns)
    if kind == "resolve":
        return ProbeSpec("resolve", name=rest)
    if kind == "tcp":
        host, sep, port = rest.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(text, "expected tcp:HOST:PORT")
        return ProbeSpec("tcp", server=_ip(text, host), port=int(port))
    if kind == "icmp":
        return ProbeSpec("icmp", server=_ip(text, rest))
    raise _bad(text, f"unknown probe kind {kind!r}")


def _edns(text: str, value: str) -> int:
    if not value.isdigit() or not EDNS_MIN <= int(value) <= EDNS_MAX:
        raise _bad(text, f"edns={value}: give the UDP buffer size, {EDNS_MIN} to {EDNS_MAX}")
    return int(value)


def _looks_like_ip(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def parse_resolv_conf(text: str) -> list[str]:
    """IPv4 nameservers of a resolv.conf, in order."""
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and _looks_like_ip(fields[1]):
            servers.append(fields[1])
    return servers


def expand_dns_servers(specs: list[ProbeSpec], resolv_conf: str) -> list[ProbeSpec]:
    """Give every server-less DNS probe one copy per nameserver of the target."""
    servers = parse_resolv_conf(resolv_conf)
    out: list[ProbeSpec] = []
    for spec in specs:
        if spec.kind == "dns" and not spec.server:
            out.extend(replace(spec, server=s) for s in servers)
        else:
            out.append(spec)
    return out
