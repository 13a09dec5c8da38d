"""`netsleuth drops`: a live, top-like view of where the kernel drops packets, and why."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from netsleuth.cli._common import (
    ExitStatus,
    add_docker_host_option,
    add_duration_option,
    add_json_option,
    add_netns_option,
    add_target_option,
    docker_hosts,
    positive_int,
    require_root,
)
from netsleuth.deps import require
from netsleuth.errors import TargetNotFound

__all__ = ["add_parser"]

_DESCRIPTION = """\
Show the packets the kernel drops, by drop reason (OTHERHOST, NO_TX_TARGET,
NETFILTER_DROP, NEIGH_FAILED, IP_RPFILTER, SOCKET_RCVBUFF, NO_SOCKET, ...),
the kernel function that dropped them, the network namespace (names from
/run/netns and Docker) and the device, live, until --duration or Ctrl-C.

It follows the skb:kfree_skb tracepoint with bpftrace (namespace, device and
IPv4 addresses/ports through BTF) or, where BPF is not available, a private
ftrace instance (reason and function only). Nothing global is changed: its
program or instance is removed on the way out (and after a crash, at the next
run). Under a drop storm, drops beyond --rate per second and key are counted,
not shown one by one: no count is lost.
"""

_EPILOG = """\
examples:
  netsleuth drops                              every namespace, until Ctrl-C
  netsleuth drops --netns blue --duration 30   one namespace for 30 s
  netsleuth drops --target container:web --json    a summary as JSON at the end
  netsleuth drops --json-lines | jq .reason    every drop as a JSON line"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "drops",
        help="live view of kernel packet drops by reason, function, namespace and device",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_netns_option(p, help="only drops in this named namespace", multiple=True)
    add_target_option(
        p,
        help="only drops in this target's namespace: host, netns:NAME, pid:PID, "
        "container:NAME (repeatable)",
        multiple=True,
    )
    add_docker_host_option(
        p, help="Docker daemon for container targets and names (default: its socket if any)"
    )
    add_duration_option(p, help="stop after S seconds (default: until Ctrl-C)")
    add_json_option(p, help="print one JSON summary at the end (no live view)")
    p.add_argument(
        "--json-lines", action="store_true", help="print every drop (and aggregate) as a JSON line"
    )
    p.add_argument(
        "--mechanism",
        choices=("auto", "bpftrace", "ftrace"),
        default="auto",
        help="how to follow the tracepoint (default: bpftrace where it can run, else ftrace)",
    )
    p.add_argument(
        "--rate",
        type=positive_int,
        default=100,
        metavar="N",
        help="drops per second and key shown one by one; beyond, counted (default 100)",
    )
    p.add_argument(
        "--all-reasons",
        action="store_true",
        help="also NOT_SPECIFIED (plain kfree_skb(): mostly not a loss)",
    )
    p.add_argument("--top", type=positive_int, default=25, metavar="N", help="rows shown")
    p.set_defaults(handler=_drops)


def _selected(args: argparse.Namespace) -> dict[int, str]:
    """nsfs inode → label of the namespaces asked for (empty: all)."""
    from netsleuth import netns
    from netsleuth.watch.targets import parse_target

    hosts = docker_hosts(args.docker_host)
    out: dict[int, str] = {}
    for name in args.netns:
        try:
            out[os.stat(netns.netns_path(name)).st_ino] = name
        except OSError:
            raise TargetNotFound(
                f"network namespace {name} does not exist (see `ip netns list`)"
            ) from None
    for text in args.target:
        target = parse_target(text, hosts[0] if hosts else None)
        loc = target.locate()
        if loc is None:
            raise TargetNotFound(f"target {text} not found (its namespace or container is gone)")
        out[loc.identity[1]] = target.label
    return out


def _drops(args: argparse.Namespace) -> ExitStatus:
    from rich.console import Console
    from rich.live import Live

    from netsleuth.drops import Drop, DropSource
    from netsleuth.drops.names import namespace_names
    from netsleuth.drops.tally import DropTally

    require_root("netsleuth drops")
    require("drops")
    selected = _selected(args)
    hosts = docker_hosts(args.docker_host)
    names = {**namespace_names(hosts), **selected}
    names_at = time.monotonic()
    lock = threading.Lock()

    def name_of(inode: int) -> str:
        nonlocal names, names_at
        if inode == 0:
            return "unknown"
        if inode not in names and time.monotonic() - names_at > 2:
            names = {**namespace_names(hosts), **selected}  # a namespace created since
            names_at = time.monotonic()
        return names.get(inode, f"netns:{inode}")

    tally = DropTally(name_of)
    wall_offset = time.time_ns() - time.monotonic_ns()

    def sink(drops: list[Drop]) -> None:
        with lock:
            tally.add(drops)
            if args.json_lines:
                for d in drops:
                    row = d.to_json()
                    row["netns"] = name_of(d.netns)
                    row["wall_ns"] = d.mono_ns + wall_offset
                    print(json.dumps(row), flush=True)

    accept = None
    if selected:
        wanted = set(selected)

        def accept(inode: int) -> bool:
            return inode in wanted or inode == 0

    source = DropSource(
        sink,
        prefer=args.mechanism,
        accept=accept,
        rate=args.rate,
        include_noise=args.all_reasons,
    )
    err = Console(stderr=True, highlight=False)
    live_view = not (args.json or args.json_lines) and err.is_terminal
    if live_view:
        err.print("starting the drop source ...")
    source.start()  # DropsUnavailable: one line, exit 1
    started = time.monotonic()
    if selected and source.mechanism == "ftrace":
        err.print("ftrace cannot tell namespaces apart: drops of every namespace are shown")
    deadline = started + args.duration if args.duration else None
    try:
        if live_view:
            with Live(console=err, refresh_per_second=2, transient=False) as live:
                while deadline is None or time.monotonic() < deadline:
                    with lock:
                        live.update(_table(tally, source.summary, time.monotonic() - started, args))
                    time.sleep(0.5)
        else:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the view: the summary follows
    finally:
        source.stop()
    seconds = time.monotonic() - started
    if args.json:
        print(
            json.dumps(
                {
                    "mechanism": source.mechanism,
                    "missing": source.missing,
                    "seconds": round(seconds, 3),
                    "total": tally.total,
                    "lost": source.lost,
                    "reasons": dict(tally.reasons.most_common()),
                    "drops": [r.to_json() for r in tally.top()],
                },
                indent=2,
            )
        )
    elif not args.json_lines:
        out = Console(file=sys.stdout if not live_view else sys.stderr, highlight=False)
        if not live_view:
            out.print(_table(tally, source.summary, seconds, args))
    if source.lost:
        err.print(f"{source.lost} drops could not be read (the tracer fell behind)")
    return ExitStatus.OK


def _table(tally: Any, summary: str, seconds: float, args: argparse.Namespace) -> Any:
    from rich.table import Table

    title = f"{tally.total} drops in {seconds:.0f} s — {summary}"
    table = Table(title=title, title_justify="left", expand=False)
    for col, justify in (
        ("count", "right"),
        ("reason", "left"),
        ("function", "left"),
        ("namespace", "left"),
        ("device", "left"),
        ("last packet", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in tally.top(args.top):
        table.add_row(
            str(row.count), row.reason, row.location, row.netns, row.device or "-", row.example
        )
    if not tally.rows:
        table.add_row("0", "(no drops yet)", "", "", "", "")
    return table
