"""`netsleuth lab`: the bridge-MAC outage, reproduced in throwaway namespaces."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from rich.console import Console

from netsleuth.cli._common import (
    ExitStatus,
    add_duration_option,
    add_json_option,
    add_store_option,
    nonneg_float,
    positive_float,
    positive_int,
    print_usage,
    require_root,
)
from netsleuth.deps import require
from netsleuth.lab.faults import fault_help, fault_ids

__all__ = ["add_parser"]

_DESCRIPTION = """\
Build the failing setup in throwaway network namespaces and watch it fail:
a "host" namespace with a Linux bridge whose MAC is not pinned, NAT out of an
uplink to an "upstream" namespace running dnsmasq, and "container"
namespaces on the bridge probing DNS 20 times a second. Churn makes veth
ports join and leave the bridge like a CI host; each port that leaves may
take the bridge's MAC with it, and containers that learned that MAC lose
their gateway for seconds.

Nothing outside the lab's namespaces (named nsl-<run id>-*) is touched, and
everything is removed afterwards (run `netsleuth lab clean` after a crash).
Addresses come from 198.18.0.0/15."""

_EPILOG = """\
examples:
  netsleuth lab demo                                 bug -> report -> fix -> before/after
  netsleuth lab run --churn-mac low --duration 30    one unpinned case
  netsleuth lab compare --arp-notify --duration 120  unpinned vs pinned vs arp_notify
  netsleuth lab run --fault nat-missing --store s.sqlite && netsleuth report s.sqlite
  netsleuth lab clean                                remove what a killed run left

faults (--fault ID; the id is the cause `report` must name):
"""


def _engine_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=["veth", "docker"],
        default="veth",
        help="containers as veth + namespaces (default), or a real throwaway "
        "dockerd on the lab bridge with busybox containers (the reference's "
        "setup: a second daemon with --bridge on a pre-created bridge)",
    )


def _case_options(p: argparse.ArgumentParser, *, single: bool) -> None:
    _engine_option(p)
    if single:
        p.add_argument("--pin-mac", action="store_true", help="give the bridge a fixed MAC")
        p.add_argument(
            "--arp-notify",
            action="store_true",
            help="set net.ipv4.conf.BRIDGE.arp_notify=1 (the mitigation)",
        )
    else:
        p.add_argument(
            "--arp-notify",
            action="store_true",
            help="also run the arp_notify case as a third column",
        )
    p.add_argument(
        "--churn",
        choices=["veth", "none"],
        default=None,
        help="ports joining and leaving the bridge (default: veth with no --fault or "
        "--fault bridge-mac-flap, none with any other fault)",
    )
    p.add_argument(
        "--churn-mac",
        choices=["random", "low"],
        default=None,
        help="churn port MACs: random like the kernel's (default), or a new MAC "
        "lower than every other each cycle, which moves the bridge MAC every time "
        "(default with --fault bridge-mac-flap)",
    )
    p.add_argument(
        "--t-in",
        type=positive_float,
        default=2.0,
        metavar="S",
        help="seconds a churn port stays on the bridge (default 2)",
    )
    p.add_argument(
        "--t-out",
        type=nonneg_float,
        default=1.0,
        metavar="S",
        help="seconds between churn ports (default 1)",
    )
    p.add_argument(
        "--containers",
        type=positive_int,
        default=1,
        metavar="N",
        help="probing container namespaces (default 1)",
    )
    add_duration_option(p, default=30.0, help="seconds per case (default 30)")
    p.add_argument(
        "--rate",
        type=positive_float,
        default=20.0,
        metavar="R",
        help="DNS probes per second per container, fixed schedule (default 20)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=1.0,
        metavar="S",
        help="seconds before a probe counts as lost (default 1)",
    )
    p.add_argument(
        "--fault",
        choices=fault_ids(),
        default="none",
        metavar="ID",
        help="reproduce this cause (listed below; default: none, the churn alone)",
    )
    p.add_argument(
        "--loss",
        type=positive_int,
        default=5,
        metavar="PCT",
        help="percent of DNS packets dropped upstream with --fault upstream-dns",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed for the port MACs (same seed, same churn)"
    )
    add_json_option(p, help="print results as JSON")


def add_parser(sub: Any) -> None:
    lab = sub.add_parser(
        "lab",
        help="reproduce the bridge-MAC outage in throwaway namespaces",
        description=_DESCRIPTION,
        epilog=_EPILOG + fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION")
    lab.set_defaults(handler=lambda args: print_usage(lab))

    run = lab_sub.add_parser(
        "run",
        help="run one case and summarise it",
        description="Run one lab case: build, churn or fault, probe, summarise, tear down.",
        epilog="faults (--fault ID; the id is the cause `report` must name):\n" + fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _case_options(run, single=True)
    add_store_option(run, help="keep the watch store here (for `netsleuth report`)")
    run.add_argument("--run-id", metavar="ID", help="lab run id (default: random)")
    run.set_defaults(handler=_run)

    cmp_ = lab_sub.add_parser(
        "compare",
        help="unpinned vs pinned (vs arp_notify), or a fault without and with its fix",
        description="Run the unpinned and the pinned case (and "
        "arp_notify) with identical churn and duration; with --fault ID (a fault "
        "the lab can fix), the fault as it is and with its fix applied.",
    )
    _case_options(cmp_, single=False)
    cmp_.set_defaults(handler=_compare)

    demo = lab_sub.add_parser(
        "demo",
        help="the whole story: bug, report, fix, before/after",
        description="Build the unpinned lab with churn, watch it, name "
        "the cause with `report`, pin the bridge MAC with "
        "`fix`, watch again, and show before and after.",
    )
    add_duration_option(demo, default=25.0, help="seconds per phase (default 25)")
    demo.add_argument(
        "--containers",
        type=positive_int,
        default=3,
        metavar="N",
        help="probing container namespaces (default 3)",
    )
    _engine_option(demo)
    add_json_option(demo, help="print the outcome as JSON")
    demo.set_defaults(handler=_demo)

    clean = lab_sub.add_parser(
        "clean",
        help="remove what a killed lab run left behind",
        description="Remove every lab namespace, dnsmasq and state "
        "file whose owner process is gone.",
    )
    clean.set_defaults(handler=_clean)


def _options(args: argparse.Namespace, **overrides: Any) -> Any:
    from netsleuth.lab.run import LabOptions

    values = dict(
        pin_mac=getattr(args, "pin_mac", False),
        arp_notify=getattr(args, "arp_notify", False),
        engine=args.engine,
        churn=args.churn,
        churn_mac=args.churn_mac,
        containers=args.containers,
        duration=args.duration,
        rate=args.rate,
        timeout=args.timeout,
        t_in=args.t_in,
        t_out=args.t_out,
        fault=args.fault,
        loss_percent=args.loss,
        seed=args.seed,
        run_id=getattr(args, "run_id", None),
        store=getattr(args, "store", None),
    )
    values.update(overrides)
    return LabOptions(**values)


def _progress_console() -> Console:
    # Progress goes to stderr so --json on stdout stays clean.
    return Console(stderr=True)


def _cases(args: argparse.Namespace, title: str, run: Callable[..., list[Any]]) -> ExitStatus:
    """Common body of `lab run` and `lab compare`: run the cases with progress,
    then print them as a table or JSON."""
    from netsleuth.lab import check_requirements
    from netsleuth.lab.render import LabProgress, results_table

    require_root("netsleuth lab")
    require("lab")
    check_requirements()
    with LabProgress(_progress_console()) as progress:
        results = run(progress.update)
    for r in results:
        if r.note:  # a replay says so (on stderr beside --json)
            Console(stderr=bool(args.json)).print(r.note, highlight=False, markup=False)
    if args.json:
        print(json.dumps({"cases": [r.to_json() for r in results]}, indent=2))
        return ExitStatus.OK
    Console().print(results_table(results, title=title))
    for r in results:
        if r.store:
            Console().print(f"store kept at {r.store}: netsleuth report {r.store}")
    return ExitStatus.OK


def _run(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.lab.run import run_case

    opts = _options(args)
    opts.validate()
    return _cases(args, f"lab run ({opts.case_name})", lambda p: [run_case(opts, p)])


def _compare(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.lab.run import compare

    opts = _options(args, arp_notify=False)
    opts.validate()
    return _cases(
        args,
        "lab compare",
        lambda p: compare(opts, with_arp_notify=args.arp_notify, progress=p),
    )


def _demo(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.lab.demo import run_demo

    require_root("netsleuth lab")
    require("lab")
    status = run_demo(
        duration=args.duration,
        as_json=args.json,
        console=Console(),
        err=_progress_console(),
        containers=args.containers,
        engine=args.engine,
    )
    return ExitStatus(status)


def _clean(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.lab import clean_labs

    require_root("netsleuth lab clean")
    removed = clean_labs()
    if removed:
        print("removed: " + " ".join(removed))
    else:
        print("nothing to clean")
    return ExitStatus.OK
