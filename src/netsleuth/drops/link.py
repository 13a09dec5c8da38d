"""Which recorded drops were the packets of which failed probes.

A probe that timed out records where it sent from (``from ADDR:PORT`` in its
answer: the probe worker reads the socket's name when it gives up on it);
its destination is its server and port. A drop whose IPv4 5-tuple (protocol,
source, source port, destination, destination port) is that of the probe,
seen between the probe's sending and its timeout (plus slack), was that
probe's query (or one of a TCP probe's SYNs). The tuple is the one the probe
sent: a drop behind source NAT carries the translated source and is not
linked (nor are drops recorded without headers, by the ftrace fallback).
A drop of the reversed tuple in that time is the probe's answer (dropped on
its way back, e.g. by strict reverse-path filtering once the reply was
translated back to the probe's address): it is linked too.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netsleuth.model import DropDetail, EventKind, NetEvent, ProbeResult
from netsleuth.probes.spec import parse_probe

__all__ = ["ProbeDrops", "Tuple5", "link_drops", "probe_tuple"]

_SOURCE = re.compile(r"^from (\d{1,3}(?:\.\d{1,3}){3}):(\d+)$")
_PROTO = {"dns": "udp", "tcp": "tcp"}
_DEFAULT_PORT = {"dns": 53}

Tuple5 = tuple[str, str, int, str, int]
"""(proto, saddr, sport, daddr, dport)."""


@dataclass(frozen=True, slots=True)
class ProbeDrops:
    """A failed probe and the drops of its packets (empty: none found)."""

    probe: ProbeResult
    tuple5: Tuple5
    drops: tuple[NetEvent, ...]


def probe_tuple(probe: ProbeResult) -> Tuple5 | None:
    """The 5-tuple a probe sent with, when it recorded its source."""
    match = _SOURCE.match(probe.answer)
    if match is None:
        return None
    try:
        spec = parse_probe(probe.probe)
    except Exception:  # noqa: BLE001 - a spec of another version: not linkable
        return None
    proto = _PROTO.get(spec.kind)
    if proto is None:
        return None
    port = spec.port or _DEFAULT_PORT.get(spec.kind, 0)
    server = probe.server or spec.server
    return (proto, match.group(1), int(match.group(2)), server, port)


def drop_tuple(detail: DropDetail) -> Tuple5 | None:
    if not detail.saddr or not detail.sport:
        return None
    return (detail.proto, detail.saddr, detail.sport, detail.daddr, detail.dport)


def link_drops(
    probes: Iterable[ProbeResult],
    events: Sequence[NetEvent],
    timeout_ns: int = 1_000_000_000,
    slack_ns: int = 500_000_000,
) -> list[ProbeDrops]:
    """Every failed probe that recorded its source, with the drops of its
    5-tuple (or of its answer's, the reversed one) seen from 1 ms before it
    was sent to ``timeout_ns`` + ``slack_ns`` after (times on CLOCK_MONOTONIC,
    as both were recorded)."""
    by_tuple: dict[Tuple5, list[tuple[int, int, NetEvent]]] = defaultdict(list)
    for i, ev in enumerate(events):
        if ev.kind is EventKind.DROP and isinstance(ev.detail, DropDetail):
            key = drop_tuple(ev.detail)
            if key is not None:
                by_tuple[key].append((ev.mono_ns, i, ev))
    for rows in by_tuple.values():
        rows.sort(key=lambda r: (r[0], r[1]))
    out = []
    for probe in probes:
        if not probe.outcome.failed:
            continue
        key = probe_tuple(probe)
        if key is None:
            continue
        rows = by_tuple.get(key, [])
        answers = by_tuple.get((key[0], key[3], key[4], key[1], key[2]))
        if answers:  # the answer's drops, on its way back
            rows = sorted([*rows, *answers], key=lambda r: (r[0], r[1]))
        lo = bisect.bisect_left(rows, probe.mono_ns - 1_000_000, key=lambda r: r[0])
        hi = bisect.bisect_right(rows, probe.mono_ns + timeout_ns + slack_ns, key=lambda r: r[0])
        out.append(ProbeDrops(probe, key, tuple(r[2] for r in rows[lo:hi])))
    return out
