"""`netsleuth explain FILE...`: follow each DNS query of a capture across
interfaces, classify it, and name the stale-gateway signature."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Any

from netsleuth.cli._common import (
    ExitStatus,
    add_json_option,
    add_store_option,
    positive_float,
    positive_int,
)
from netsleuth.errors import InvalidArgument
from netsleuth.packets.explain import Keep, explain
from netsleuth.packets.journey import BridgeHistory, bridge_history
from netsleuth.packets.render import render_explanation

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
    add_store_option(
        parser, help="a watch store: take the bridge's MAC history and its ports' MACs from it"
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
        metavar="S",
        help="seconds after a query its sightings and answer still count (default 5)",
    )
    add_json_option(parser, help="machine-readable output")
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


def run(args: argparse.Namespace) -> ExitStatus:
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
        print(render_explanation(result, queries=args.queries, limit=args.limit))
    return ExitStatus.OK
