"""`netsleuth explain FILE...`: follow each DNS query of a capture across
interfaces, classify it, and name the stale-gateway signature."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any

from netsleuth.cli._common import positive_float, positive_int
from netsleuth.errors import InvalidArgument
from netsleuth.packets.explain import Explanation, Keep, explain
from netsleuth.packets.journey import BridgeHistory, bridge_history
from netsleuth.packets.model import Journey, Verdict

__all__ = ["add_parser"]

_DESCRIPTION = """\
Follow every DNS query in one or more captures across the interfaces it
crossed (container veth / bridge port, bridge, uplink), following NAT, and
say what happened to it:

  answered            an answer came back to the client
  nat-unanswered      NATed out through the uplink, no answer came back (upstream)
  escaped-nat         left through the uplink untranslated where others were NATed
  lost-on-return      answered upstream, the answer never reached the client
  never-left-bridge   never seen on the uplink: the host never routed it
  unanswered          no answer, and no uplink in the capture to tell where

For queries that never left the bridge it shows the frame's destination MAC
against the bridge's MAC at that moment (from the capture's ARP traffic, or
exactly from a watch store with --store) and names the stale-gateway
signature: frames sent to a MAC that no longer belongs to the bridge. For
queries that escaped NAT it looks for an earlier query from the same port
that never left the bridge within 30 s: its conntrack entry, made without NAT
when the bridge flooded it, is what the later query reused.

Reads pcap and pcapng (netsleuth capture, tcpdump -w, Wireshark), Ethernet
and Linux cooked captures; several files (one per interface) are merged by
time — give them container side first. A damaged tail is reported and
everything before it is used.

examples:
  netsleuth capture --lab 3fa2c1 --duration 60 -w lab.pcapng
  netsleuth explain lab.pcapng
  netsleuth explain port.pcap bridge.pcap uplink.pcap --queries
  netsleuth explain lab.pcapng --store netsleuth.db --json
"""


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "explain",
        help="classify every DNS query of a capture: answered, lost where, and why",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="pcap or pcapng files")
    parser.add_argument(
        "--queries",
        nargs="?",
        const="failed",
        choices=["failed", "all"],
        help="also list queries one per line (default: the failed ones)",
    )
    parser.add_argument(
        "--limit", type=positive_int, default=50, help="lines of the query list (default 50)"
    )
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="a watch store: take the bridge's MAC history and its ports' MACs from it",
    )
    parser.add_argument(
        "--bridge", metavar="NAME", help="the bridge in the store (default: the only one)"
    )
    parser.add_argument(
        "--gateway",
        metavar="IP",
        help="the clients' gateway address (default: learned from the capture's ARP)",
    )
    parser.add_argument(
        "--window",
        type=positive_float,
        default=5.0,
        metavar="SECONDS",
        help="how long after a query its sightings and answer still count (default 5)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def _history(args: argparse.Namespace) -> BridgeHistory | None:
    if not args.store:
        if args.bridge:
            raise InvalidArgument("--bridge names a bridge in a store; give --store too")
        return None
    from netsleuth.store import Store

    with Store(args.store) as store:
        events = store.events()
    history = bridge_history(events, args.bridge or "")
    if history is None:
        raise InvalidArgument(
            f"{args.store} does not name exactly one bridge; pick one with --bridge NAME"
        )
    return history


def run(args: argparse.Namespace) -> int:
    gateway: bytes | None = None
    if args.gateway:
        try:
            gateway = socket.inet_aton(args.gateway)
        except OSError:
            raise InvalidArgument(f"--gateway {args.gateway!r} is not an IPv4 address") from None
    history = _history(args)
    keep: Keep = "all" if args.queries == "all" else "failed"
    show = sys.stderr.isatty() and not args.json
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if show and now - last[0] > 0.5:
            last[0] = now
            print(f"\rreading: {100 * done // max(total, 1)} %", end="", file=sys.stderr)

    result = explain(
        args.files,
        keep=keep,
        window_ns=int(args.window * 1e9),
        gateway=gateway,
        history=history,
        progress=progress,
    )
    if show and last[0]:
        print("\r" + " " * 20 + "\r", end="", file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(render(result, queries=args.queries, limit=args.limit))
    return 0


def _fmt_ts(ts_ns: int) -> str:
    t = time.gmtime(ts_ns // 1_000_000_000)
    return time.strftime("%H:%M:%S", t) + f".{ts_ns % 1_000_000_000 // 1_000_000:03d}"


def render(result: Explanation, *, queries: str | None, limit: int) -> str:
    """The terminal report."""
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
    for v in Verdict:
        n = result.counts.get(str(v), 0)
        if n or v in (Verdict.ANSWERED, Verdict.NEVER_LEFT_BRIDGE):
            pct = 100.0 * n / result.journeys_total if result.journeys_total else 0.0
            lines.append(f"  {n:>8}  {pct:5.1f} %  {v}: {v.meaning}")
    if result.orphan_answers:
        lines.append(f"  ({result.orphan_answers} answers to queries before the capture began)")
    if result.counts.get(str(Verdict.UNANSWERED)):
        lines.append(
            "  note: no uplink was seen in the capture; capture the uplink too "
            "(netsleuth capture --lab / --iface NETNS:UPLINK:uplink) to tell where they stopped"
        )
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
        lines.extend(_query_line(j) for j in shown[:limit])
    return "\n".join(lines)


def _query_line(j: Journey) -> str:
    text = f"  {_fmt_ts(j.ts_ns)}  id {j.dns_id:<5} {j.qname:<24} {j.client:<21} {j.verdict:<17}"
    if j.latency_ns is not None:
        text += f" {j.latency_ns / 1e6:.1f} ms"
    if j.nat_source:
        text += f" {'left as' if j.verdict is Verdict.ESCAPED_NAT else 'nat'} {j.nat_source}"
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
    return text


def _first(items: list[str], n: int = 10) -> str:
    """At most ``n`` items, saying how many more there are."""
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more, --json lists all)" if len(items) > n else "")
