"""`netsleuth explain FILE...`: follow each DNS query of a capture across
interfaces, classify it, and name the stale-gateway signature."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from netsleuth.cli._common import (
    ExitStatus,
    add_json_option,
    add_store_option,
    positive_float,
    positive_int,
)
from netsleuth.errors import InvalidArgument
from netsleuth.model import NetEvent
from netsleuth.packets.drops import (
    DropLog,
    drops_from_events,
    merge_logs,
    read_sidecar,
    sidecar_logs,
    sidecar_path,
)
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

For each lost query it says which kernel drop ended it — "dropped as
NO_TX_TARGET by br_handle_frame_finish on vc0 (host)" — when drops were
recorded: by `capture --drops` (FILE.drops.jsonl next to the capture, found
by itself), in a file given with --drops, or by watch in the --store. The
drop is the one with the packet's addresses and ports right after it was
last seen. "No drop was recorded for it" is said only where drops were being
recorded at that moment; without drops, one line says why.

Reads pcap and pcapng (netsleuth capture, tcpdump -w, Wireshark), Ethernet
and Linux cooked captures; several files (one per interface) are merged by
time — give them container side first. A damaged tail is reported and
everything before it is used.

examples:
  netsleuth capture --lab 3fa2c1 --duration 60 -w lab.pcapng
  netsleuth explain lab.pcapng
  netsleuth explain port.pcap bridge.pcap uplink.pcap --queries
  netsleuth explain lab.pcapng --store netsleuth.db --json
  netsleuth capture --lab 3fa2c1 --duration 60 -w lab.pcapng --drops
  netsleuth explain lab.pcapng --queries      (reads lab.drops.jsonl too)
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
    parser.add_argument(
        "--drops",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="kernel drops recorded by capture --drops (default: FILE.drops.jsonl next to "
        "each capture, when there is one); repeatable",
    )
    add_json_option(parser, help="machine-readable output")
    parser.set_defaults(handler=run)


def _store(args: argparse.Namespace) -> tuple[list[NetEvent], list[tuple[int, int | None]]]:
    if not args.store:
        if args.bridge:
            raise InvalidArgument("--bridge names a bridge in a store; give --store too")
        return [], []
    from netsleuth.store import Store

    with Store(args.store) as store:
        return store.events(), [(r.started_ns, r.ended_ns) for r in store.runs()]


def _history(args: argparse.Namespace, events: list[NetEvent]) -> BridgeHistory | None:
    if not args.store:
        return None
    history = bridge_history(events, args.bridge or "")
    if history is None:
        raise InvalidArgument(
            f"{args.store} does not name exactly one bridge; pick one with --bridge NAME"
        )
    return history


def _drops(
    args: argparse.Namespace, events: list[NetEvent], runs: list[tuple[int, int | None]]
) -> tuple[DropLog | None, str]:
    """The drops at hand (sidecars, --drops, the store), or why there are none."""
    logs = [read_sidecar(p) for p in args.drops] if args.drops else sidecar_logs(args.files)
    if args.store:
        stored = drops_from_events(events, runs, str(args.store))
        if stored is not None:
            logs.append(stored)
    if logs:
        return merge_logs(logs), ""
    names = ", ".join(str(sidecar_path(f).name) for f in args.files[:3])
    return None, (
        f"none recorded with this capture (no {names}; record them with "
        "`netsleuth capture --drops`, or give --drops FILE or a watch --store)"
    )


def run(args: argparse.Namespace) -> ExitStatus:
    gateway: bytes | None = None
    if args.gateway:
        try:
            gateway = socket.inet_aton(args.gateway)
        except OSError:
            raise InvalidArgument(f"--gateway {args.gateway!r} is not an IPv4 address") from None
    events, runs = _store(args)
    history = _history(args, events)
    drops, drops_missing = _drops(args, events, runs)
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
        drops=drops,
        drops_missing=drops_missing,
    )
    if show and last[0]:
        print("\r" + " " * 20 + "\r", end="", file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print(render_explanation(result, queries=args.queries, limit=args.limit))
    return ExitStatus.OK
