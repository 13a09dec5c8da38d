"""`netsleuth watch`: probe from targets, record probes and events into the store."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from rich.console import Console

from netsleuth.cli._common import (
    ExitStatus,
    add_duration_option,
    add_json_option,
    add_probe_options,
    docker_hosts,
    nonneg_float,
    positive_int,
    require_root,
)
from netsleuth.deps import require

__all__ = ["add_parser"]

_DESCRIPTION = """\
Probe continuously from inside one or more targets and record every attempt,
plus every relevant network event, into a store that `netsleuth report` reads.

Targets (repeat --target; `host` is the natural control group):
  host                 this host's own namespace
  netns:NAME           a named network namespace (ip netns)
  pid:PID              the network namespace of a process
  container:NAME|ID    a Docker container (see --docker-host)

Every container, automatically (--containers, on every --docker-host):
  probes from each running container and from each new one as it starts, for
  as long as it lives (dns:NAME asks the container's own resolv.conf servers);
  a container that ends is recorded as ended (target-ended), not as failures.
  Filters (repeat --containers; no filter: every container):
    label=KEY  label=KEY=VALUE   containers with that label (all must match)
    name=GLOB  or a bare GLOB    containers whose name matches (any may)
  Each is target container:NAME (container:NAME@DAEMON when another daemon
  has one of that name); its name, ID, image, labels and daemon are stored.

Probes (repeat --probe; each runs on a fixed schedule at --rate, jittered):
  dns:SERVER/NAME[/TYPE]  one query to one server (dns:NAME uses every
                          nameserver of the target's own resolv.conf)
  dns:.../edns=SIZE       the same offering an EDNS0 buffer of SIZE bytes, for
                          large answers (beside a small query: an MTU black hole)
  resolve:NAME            the target's system resolver (getaddrinfo)
  tcp:HOST:PORT           a TCP connect
  icmp:HOST               an ICMP echo

The topology is found by itself: for each target, the veth its default route
leaves by, that veth's peer, the bridge the peer is a port of, and the
namespace holding it. That namespace plays "host" (its bridges, NAT and links
are recorded; --host-netns overrides it), and when no target probes from
there a control target `host` is added there (--no-control to leave it out).

Real traffic (--passive [BRIDGE ...]): every DNS query a client sends across
the bridges is matched with its answer (by addresses, ports, id and name; its
NATed copy on the uplink shows how far an unanswered one went) and stored as
one attempt of series `passive:dns/TYPE` of that client: container:NAME via
the Docker API, netns:NAME, else its address. Unanswered within --timeout is a
timeout; rcodes count as for probes. The bridge is captured promiscuously, so
queries sent to a stale gateway MAC are seen too. --probe is optional then.

Events recorded beside the probes: links added/removed, ports joining and
leaving bridges, MAC/operstate/MTU changes, the gateway's neighbour entry in
each target, bridge FDB entries, routes, nftables ruleset changes, Docker
events, the stale-gateway invariant, and the states causes predict on each
target's path (gateway entry holding a MAC the bridge no longer has, another
port's or a foreign one; NAT or forwarding for its subnet missing; a link on
its path down; default route or address missing). A gateway whose MAC is
borrowed from a port that may leave is shown as "at risk" before it fails."""

_EPILOG = """\
examples:
  netsleuth watch --target container:ci-runner --target host --probe dns:example.org
  netsleuth watch --target netns:blue --probe dns:198.18.255.2/www.lab.test --rate 20 \\
      --duration 600 --store blue.sqlite
  netsleuth watch --target container:build --docker-host unix:///run/docker-ci.sock \\
      --probe resolve:example.org --metrics 127.0.0.1:9477
  netsleuth watch --passive --duration 3600       every real query on every bridge
  netsleuth watch --passive docker0 --target container:build --probe dns:example.org
  netsleuth watch --containers 'label=ci' --containers 'build-*' \\
      --docker-host unix:///run/docker-ci.sock --probe dns:example.org"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "watch",
        help="probe from namespaces/containers and record events",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_probe_options(p, rate=10.0, probe_required=False)
    p.add_argument(
        "--passive",
        nargs="*",
        metavar="BRIDGE",
        help="also record every real DNS query crossing the bridges (and its answer, or "
        "none within --timeout), per client: over UDP and TCP, IPv4 and IPv6. Default: "
        "the bridges the targets' paths use (every bridge of the host namespace when "
        "there is no target), plus the uplinks; BRIDGE ... restricts it. --probe is "
        "optional then (see docs/passive.md)",
    )
    add_duration_option(p, help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument(
        "--count", type=positive_int, metavar="N", help="stop after N attempts per probe"
    )
    p.add_argument(
        "--metrics",
        metavar="ADDR",
        nargs="?",
        const="127.0.0.1:9477",
        help="serve Prometheus metrics on ADDR (default 127.0.0.1:9477)",
    )
    p.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="do not add a control target in the namespace that holds the targets' bridges "
        "(added when none of the targets probes from there)",
    )
    p.add_argument(
        "--containers",
        action="append",
        nargs="?",
        const="",
        metavar="FILTER",
        help="probe from every running container of each --docker-host and from each "
        "new one while it lives; FILTER (repeatable): label=KEY[=VALUE], name=GLOB "
        "or a bare name GLOB (default: every container)",
    )
    p.add_argument(
        "--counters",
        type=nonneg_float,
        default=1.0,
        metavar="S",
        help="read each watched namespace's kernel loss counters (conntrack, neighbour "
        "table, UDP buffers, rp_filter, link drops) every S seconds and record what "
        "rose (default 1; 0: off)",
    )
    p.add_argument(
        "--no-drops",
        dest="drops",
        action="store_false",
        help="do not record kernel drop reasons (skb:kfree_skb via bpftrace or ftrace; "
        "recorded by default where the kernel allows)",
    )
    p.add_argument(
        "--retain",
        type=_duration,
        metavar="DURATION",
        help="keep every attempt for DURATION (e.g. 14d, 36h) and only per-minute "
        "aggregates of older ones, so `report` over old ranges gives failure rates at "
        "minute resolution (default: keep all; the systemd unit passes 14d)",
    )
    p.add_argument(
        "--max-store-size",
        type=_size,
        metavar="SIZE",
        help="never let the store (database + log) grow past SIZE (e.g. 2G, 500M): the "
        "oldest attempts become per-minute aggregates, then the oldest aggregates and "
        "events go; what went is recorded in the store and shown by `report`",
    )
    p.add_argument("--quiet", action="store_true", help="no live view")
    add_json_option(p, help="print a JSON summary at the end")
    p.set_defaults(handler=_watch)


def _duration(text: str) -> int:
    from netsleuth.store.retention import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(text: str) -> int:
    from netsleuth.store.retention import parse_size

    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size < 1 << 20:
        raise argparse.ArgumentTypeError(f"{text!r} is below 1M; give e.g. 500M or 2G")
    return size


def _watch(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.store.sqlite import default_store_path
    from netsleuth.watch import WatchConfig, WatchEngine
    from netsleuth.watch.view import WatchView, stats_table

    require_root("netsleuth watch")
    require("watch")
    store = args.store or default_store_path()
    config = WatchConfig(
        targets=tuple(
            args.target
            or (
                []
                if args.containers is not None or (args.passive is not None and not args.probe)
                else ["host"]
            )
        ),
        probes=tuple(args.probe),
        rate=args.rate,
        timeout=args.timeout,
        duration=args.duration,
        count=args.count,
        docker_hosts=docker_hosts(args.docker_host),
        host_netns=args.host_netns,
        control=args.control,
        counters=args.counters,
        drops=args.drops,
        containers=None if args.containers is None else tuple(args.containers),
        passive=None if args.passive is None else tuple(args.passive),
        retain_ns=args.retain,
        max_store_bytes=args.max_store_size,
        args={k: v for k, v in vars(args).items() if k != "handler"},
    )
    observers: list[Any] = []
    with contextlib.ExitStack() as stack:
        if args.metrics:
            from netsleuth.metrics import WatchMetrics, new_registry, serve

            registry = new_registry()
            observers.append(WatchMetrics(registry))
            stack.callback(serve(args.metrics, registry).close)
        engine = WatchEngine(config, store, observers=observers)
        err = Console(stderr=True)
        interrupted = False
        with WatchView(err, quiet=args.quiet) as view:
            try:
                summary = engine.run(on_tick=view.update)
            except KeyboardInterrupt:
                interrupted = True
                raise
            finally:
                if interrupted:
                    err.print(f"stopped; everything recorded so far is in {store}")
    if args.json:
        print(
            json.dumps(
                {
                    "run": summary.run_id,
                    "store": str(summary.store),
                    "seconds": summary.seconds,
                    "attempts": summary.attempts,
                    "failed": summary.failed,
                    "events": summary.events,
                    "series": [
                        {
                            "target": t,
                            "probe": p,
                            "server": s,
                            "attempts": st.attempts,
                            "failed": st.failed,
                            "outcomes": dict(st.outcomes),
                        }
                        for (t, p, s), st in sorted(summary.stats.series.items())
                    ],
                    "workers": summary.worker_stats,
                    "host_netns": summary.host_netns,
                    "control": summary.control,
                    "containers": summary.containers,
                    "containers_ended": summary.containers_ended,
                    "at_risk": [
                        {"risk": risk, "times": n}
                        for risk, n in sorted(summary.stats.risks_seen.items())
                    ],
                },
                indent=2,
            )
        )
    elif args.quiet or not err.is_terminal:
        Console().print(stats_table(summary.stats, summary.seconds))
    if engine.passive_status:
        err.print(engine.passive_status, highlight=False, markup=False)
    if args.drops and engine.drops_status:
        err.print(engine.drops_status, highlight=False, markup=False)
    for risk, n in sorted(summary.stats.risks_seen.items()):
        err.print(f"at risk ({n}x during the run): {risk}", highlight=False, markup=False)
    Console(stderr=True, soft_wrap=True).print(
        f"run {summary.run_id} stored in {summary.store}; "
        f"read it with: netsleuth report {summary.store}",
        highlight=False,
    )
    return ExitStatus.OK
