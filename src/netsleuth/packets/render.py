"""The terminal text of ``netsleuth explain``: an :class:`Explanation` in,
lines out. Pure: it reads nothing and prints nothing (``--json`` is
:meth:`Explanation.as_dict`)."""

from __future__ import annotations

import time

from netsleuth.packets.drops import DropReport, QueryDrop
from netsleuth.packets.explain import Explanation
from netsleuth.packets.model import Fate, Journey

__all__ = ["render_explanation"]


def _fmt_ts(ts_ns: int) -> str:
    t = time.gmtime(ts_ns // 1_000_000_000)
    return time.strftime("%H:%M:%S", t) + f".{ts_ns % 1_000_000_000 // 1_000_000:03d}"


def render_explanation(result: Explanation, *, queries: str | None, limit: int) -> str:
    """The terminal report; ``queries`` (``failed`` or ``all``) adds the query
    list, at most ``limit`` lines of it."""
    s = result.stats
    lines = [
        f"read {s.frames} frames from {len(result.files)} file(s) in {result.seconds:.2f} s: "
        f"{s.dns} DNS, {s.arp} ARP, {s.other} other"
        + (f", {s.malformed} malformed" if s.malformed else "")
        + (f", {s.fragments} fragments" if s.fragments else "")
        + (f", {s.unknown_linktype} of unknown link type" if s.unknown_linktype else ""),
    ]
    lines.extend(f"  warning: {d}" for d in s.damaged or [])
    lines.append("interfaces:")
    for i in result.interfaces:
        where = f" in {i.netns}" if i.netns else ""
        role = f" ({i.role})" if i.role else ""
        lines.append(f"  {i.name}{where}{role}")
    lines.append(f"{result.journeys_total} DNS queries:")
    for v in Fate:
        n = result.counts.get(str(v), 0)
        if n or v in (Fate.ANSWERED, Fate.NEVER_LEFT_BRIDGE):
            pct = 100.0 * n / result.journeys_total if result.journeys_total else 0.0
            lines.append(f"  {n:>8}  {pct:5.1f} %  {v}: {v.meaning}")
    kinds = result.by_transport or {}
    if any(k != "udp/ipv4" for k in kinds):  # say the transports when not only UDP/IPv4
        for kind, counts in kinds.items():
            n = sum(counts.values())
            failed = n - counts.get(str(Fate.ANSWERED), 0)
            what = (
                "TCP connections to the server whose handshake never completed (no query sent)"
                if kind.startswith("tcp-handshake")
                else "queries"
            )
            lines.append(f"  {kind:>20}: {n} {what}, {failed} failed")
    if s.tcp_segments:
        lines.append(
            f"  (DNS over TCP: {s.tcp_segments} segments, {s.tcp_retransmitted} retransmitted"
            + (f", {s.tcp_gaps} streams cut by a segment the capture missed" if s.tcp_gaps else "")
            + ")"
        )
    if result.orphan_answers:
        lines.append(f"  ({result.orphan_answers} answers to queries before the capture began)")
    if result.counts.get(str(Fate.UNANSWERED)):
        lines.append(
            "  note: no uplink was seen in the capture; capture the uplink too "
            "(netsleuth capture --lab / --iface NETNS:UPLINK:uplink) to tell where they stopped"
        )
    if result.drops is not None:
        lines.extend(_drop_lines(result.drops))
    for f in result.findings:
        lines.append("")
        lines.append(f"{f.severity.label.upper()} {f.rule}: {f.title}")
        ev = f.evidence
        if f.rule == "stale-gateway":
            dst_macs = sorted(ev["destination_macs"].items(), key=lambda kv: -kv[1])
            for mac, n in dst_macs[:10]:
                lines.append(f"  {n:>6} queries to {mac}")
            if len(dst_macs) > 10:
                lines.append(f"  ... and to {len(dst_macs) - 10} more MACs (--json lists all)")
            lines.append(f"  bridge MAC at those moments: {_first(ev['bridge_macs_then'])}")
            if ev["departed_ports"]:
                lines.append(f"  departed ports that owned them: {_first(ev['departed_ports'])}")
        else:
            lines.append(f"  clients: {_first(ev['clients'])}")
            if "entry_age_s_median" in ev:
                lines.append(
                    f"  the reused entries were {ev['entry_age_s_median']} s old (median), "
                    f"{ev['entry_age_s_max']} s at most"
                )
        lines.append(f"  why: {f.why}")
        lines.append(f"  fix: {f.fix}")
    if queries:
        shown = [j for j in result.journeys if queries == "all" or j.verdict.failed]
        lines.append("")
        lines.append(
            f"queries ({len(shown)}{', first ' + str(limit) if len(shown) > limit else ''}):"
        )
        matches = _matches_of(result)
        lines.extend(_query_line(j, matches.get(id(j))) for j in shown[:limit])
    return "\n".join(lines)


def _matches_of(result: Explanation) -> dict[int, QueryDrop]:
    if result.drops is None:
        return {}
    return {id(j): m for j, m in zip(result.journeys, result.drops.matches, strict=False) if m}


def _drop_lines(r: DropReport) -> list[str]:
    """The kernel's drops of the lost queries, by reason; or once, why none."""
    if not r.lost_queries:
        return []
    lines = [""]
    if not r.recorded or not r.covered:
        lines.append(f"kernel drops: {r.why}")
        return lines
    where = "; ".join(m.removeprefix("drops via ") for m in r.mechanisms) or "recorded"
    source = f"; from {', '.join(r.sources)}" if r.sources else ""
    lines.append(
        f"kernel drops ({where}{source}): {r.dropped} of {r.covered} lost queries "
        "were dropped by the kernel:"
    )
    for rc in r.by_reason[:10]:
        dev = f" on {rc.device}" if rc.device else ""
        ns = f" ({rc.netns})" if rc.netns else ""
        lines.append(f"  {rc.queries:>8}  {rc.reason} by {rc.location}{dev}{ns}")
    if len(r.by_reason) > 10:
        lines.append(f"  ... and {len(r.by_reason) - 10} more (--json lists all)")
    if r.none_recorded:
        lines.append(f"  {r.none_recorded:>8}  no drop was recorded for them")
    if r.unmatched:
        lines.append(
            f"  {r.unmatched:>8}  no drop with their addresses; drops without addresses "
            "were recorded then (aggregated under a storm, or the ftrace fallback)"
        )
    if r.covered < r.lost_queries:
        lines.append(
            f"  ({r.lost_queries - r.covered} lost queries fell outside the drop recording)"
        )
    if r.lost_by_tracer:
        lines.append(f"  ({r.lost_by_tracer} drops the tracer could not read)")
    lines.extend(f"  warning: {w}" for w in r.warnings)
    return lines


def _query_line(j: Journey, drop: QueryDrop | None = None) -> str:
    via = f"{j.transport}{j.family[-1]}"  # udp4, tcp6
    if j.handshake:
        head = f"id -     {'(TCP handshake, no query)':<24}"
    else:
        head = f"id {j.dns_id:<5} {j.qname:<24}"
    text = f"  {_fmt_ts(j.ts_ns)}  {via} {head} {j.client:<21} {j.verdict:<17}"
    if j.latency_ns is not None:
        text += f" {j.latency_ns / 1e6:.1f} ms"
    if j.truncated:
        text += " truncated (TC)"
    if j.handshake and j.rcode == 5:
        text += " refused (RST)"
    if j.nat_source:
        text += f" {'left as' if j.verdict is Fate.ESCAPED_NAT else 'nat'} {j.nat_source}"
    if j.reused_entry_age_ns is not None:
        text += f" reused a {j.reused_entry_age_ns / 1e9:.1f} s old entry of a never-left query"
    if j.mac is not None:
        m = j.mac
        text += f" dst {m.dst_mac}"
        if m.bridge_mac:
            text += f" bridge {m.bridge_mac} ({m.bridge_mac_source})"
        if m.port:
            text += f" port {m.port} {'present' if m.port_owned else 'gone'}"
        if m.stale_gateway:
            text += " STALE-GATEWAY"
    if drop is not None:
        text += f"; {drop.sentence}"
    return text


def _first(items: list[str], n: int = 10) -> str:
    """At most ``n`` items, saying how many more there are."""
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more, --json lists all)" if len(items) > n else "")
