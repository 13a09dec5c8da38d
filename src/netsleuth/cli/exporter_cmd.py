"""`netsleuth exporter`: a long-running Prometheus exporter for fleets.

It audits the host like `doctor` every --doctor-interval seconds and, when
probes are given, runs them through the watch engine; everything lands in one
metrics endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from netsleuth.cli._common import (
    ExitStatus,
    add_duration_option,
    add_netns_option,
    add_probe_options,
    docker_hosts,
    positive_float,
    require_root,
)
from netsleuth.deps import require

__all__ = ["add_parser"]

_DESCRIPTION = """\
Serve Prometheus metrics for this host, for a fleet dashboard and alerts.

Every --doctor-interval seconds it audits the host like `netsleuth doctor`
(bridges and whether their MAC is pinned, NAT, conntrack, MTU, Docker, ...)
and exports the findings by rule and severity plus one
netsleuth_bridge_mac_pinned series per bridge. With --probe it also probes
from the --target(s) like `netsleuth watch` (and records them in --store), so
failure rates, latencies, network events and stale-gateway violations are
exported too.

The endpoint listens on loopback unless told otherwise. To let a Prometheus
server on another machine scrape it, listen on an address of this host that
it can reach (never 0.0.0.0 on a host with a public interface) and allow only
that server in the host firewall. Rules and a Grafana dashboard for these
metrics ship in deploy/ (docs/fleet.md)."""

_EPILOG = """\
examples:
  netsleuth exporter                                  doctor every 60 s on 127.0.0.1:9477
  netsleuth exporter --metrics 10.0.0.5:9477 --doctor-interval 300
  netsleuth exporter --all-netns --target host --target container:ci-runner \\
      --probe dns:example.org --rate 2
  curl -s 127.0.0.1:9477/metrics | grep ^netsleuth_"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "exporter",
        help="serve Prometheus metrics: periodic doctor plus optional probes",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--metrics",
        metavar="ADDR",
        default="127.0.0.1:9477",
        help="HOST:PORT to serve /metrics on (default 127.0.0.1:9477)",
    )
    p.add_argument(
        "--doctor-interval",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="seconds between doctor audits (default 60)",
    )
    add_netns_option(p, multiple=True, help="audit these named namespaces instead of the host")
    p.add_argument(
        "--all-netns",
        action="store_true",
        help="audit every named namespace and container as well as the host",
    )
    add_duration_option(p, help="stop after S seconds (default: until Ctrl-C)")
    probes = p.add_argument_group("probes (optional; as in `netsleuth watch`)")
    add_probe_options(probes, rate=1.0, probe_required=False)
    p.set_defaults(handler=_exporter)


def _say(message: str) -> None:
    print(f"netsleuth exporter: {message}", file=sys.stderr, flush=True)


def _exporter(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.audit import read_targets
    from netsleuth.metrics import WatchMetrics, serve
    from netsleuth.metrics.exporter import DoctorLoop

    require_root("netsleuth exporter")
    require("exporter")
    if args.target and not args.probe:
        from netsleuth.errors import InvalidArgument

        raise InvalidArgument("--target needs at least one --probe (see netsleuth exporter -h)")
    metrics = WatchMetrics()
    engine = _engine(args, metrics) if args.probe else None
    with contextlib.ExitStack() as stack:
        server = serve(args.metrics, metrics.registry)
        stack.callback(server.close)
        doctor = DoctorLoop(
            metrics,
            args.doctor_interval,
            lambda: read_targets(args.netns, args.all_netns),
            on_error=_say,
        )
        stack.callback(doctor.close)
        _say(
            f"serving {server.url}; doctor every {args.doctor_interval:g} s"
            + (f"; probing from {len(engine.config.targets)} target(s)" if engine else "")
        )
        doctor.start()
        if engine is None:
            doctor.wait(args.duration)
            return ExitStatus.OK
        summary = engine.run()
        _say(
            f"{summary.attempts} attempts, {summary.failed} failed; "
            f"stored in {summary.store} (netsleuth report {summary.store})"
        )
    return ExitStatus.OK


def _engine(args: argparse.Namespace, metrics: Any) -> Any:
    from netsleuth.store.sqlite import default_store_path
    from netsleuth.watch import WatchConfig, WatchEngine

    config = WatchConfig(
        targets=tuple(args.target or ["host"]),
        probes=tuple(args.probe),
        rate=args.rate,
        timeout=args.timeout,
        duration=args.duration,
        docker_hosts=docker_hosts(args.docker_host),
        host_netns=args.host_netns,
        label="exporter",
        args={k: str(v) for k, v in vars(args).items() if k != "handler"},
    )
    return WatchEngine(config, args.store or default_store_path(), observers=[metrics])
