"""`netsleuth fix`: pin a bridge MAC now and in the network configuration;
set arp_notify, ip_forward and MTUs. Dry-run unless --apply."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.syntax import Syntax

from netsleuth.cli._common import (
    ExitStatus,
    add_json_option,
    add_netns_option,
    positive_int,
    print_usage,
    require_root,
)

if TYPE_CHECKING:
    from netsleuth.fix import BridgeFixPlan, BridgeFixResult, SysctlFix

__all__ = ["PERSIST_CHOICES", "add_parser"]

# The same tuple as netsleuth.fix.PERSIST_CHOICES (a test keeps them equal);
# repeated so `--help` does not load netlink and YAML libraries.
PERSIST_CHOICES = ("auto", "ifupdown", "networkd", "networkmanager", "netplan", "none")

_DESCRIPTION = """\
Remove a cause found by `netsleuth doctor`. Without --apply nothing changes:
the plan is printed, with a unified diff of every configuration file.
"""

_BRIDGE_EPILOG = """\
A bridge whose MAC was never set takes the smallest MAC of its ports and
changes it whenever a port joins or leaves; containers that cached the old
gateway MAC then lose traffic for seconds. Setting the MAC once pins it.

--mac auto     a stable locally administered MAC derived from the bridge name and
               /etc/machine-id (same MAC after a reinstall that keeps the id)
--mac current  pin the MAC it has now (no change seen by neighbours)
--persist auto edit the file that defines the bridge: /etc/network/interfaces(.d)
               (ifupdown), /etc/systemd/network/*.netdev (networkd), NetworkManager
               keyfiles, /etc/netplan/*.yaml. Each file is backed up first; a file
               is only edited in a format it parsed. If no file defines the bridge
               the fix refuses and prints the line to add by hand.

examples:
  netsleuth fix bridge br0                       show the plan and the diff
  netsleuth fix bridge br0 --apply               pin now and persist
  netsleuth fix bridge br-ci --netns lab --persist none --apply
"""


def _common(p: argparse.ArgumentParser) -> None:
    add_netns_option(p, help="act inside this named network namespace")
    p.add_argument("--apply", action="store_true", help="make the change (default: dry run)")
    add_json_option(p, help="print the plan/result as JSON")


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "fix",
        help="pin a bridge MAC now and persistently; arp_notify, ip_forward, MTU",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fsub = parser.add_subparsers(dest="fix_what", metavar="WHAT")
    parser.set_defaults(handler=lambda args: print_usage(parser))

    b = fsub.add_parser(
        "bridge",
        help="pin a bridge's MAC (rule bridge-mac-unpinned)",
        description="Pin a bridge's MAC now (netlink) and in the network configuration.",
        epilog=_BRIDGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("bridge", metavar="BRIDGE")
    b.add_argument("--mac", default="auto", help="auto (default), current, or XX:XX:XX:XX:XX:XX")
    b.add_argument(
        "--arp-notify",
        action="store_true",
        help="also set net.ipv4.conf.BRIDGE.arp_notify=1 (announce MAC changes)",
    )
    b.add_argument(
        "--persist",
        choices=PERSIST_CHOICES,
        default="auto",
        help="which configuration to edit (default auto: whichever defines the bridge)",
    )
    b.add_argument("--etc-root", type=Path, help=argparse.SUPPRESS)
    _common(b)
    b.set_defaults(handler=_bridge)

    a = fsub.add_parser(
        "arp-notify",
        help="set arp_notify=1 on a bridge (rule bridge-arp-notify-off)",
        description="Set net.ipv4.conf.BRIDGE.arp_notify=1 now. It is lost when the "
        "bridge is recreated: pin the MAC (fix bridge) for a lasting fix.",
    )
    a.add_argument("bridge", metavar="BRIDGE")
    _common(a)
    a.set_defaults(handler=_arp_notify)

    f = fsub.add_parser(
        "ip-forward",
        help="turn IPv4 forwarding on (rule ip-forward-off)",
        description="Set net.ipv4.ip_forward=1 now; persist it with a file in /etc/sysctl.d/.",
    )
    _common(f)
    f.set_defaults(handler=_ip_forward)

    m = fsub.add_parser(
        "mtu",
        help="give a bridge and its ports one MTU (rule mtu-mismatch)",
        description="Set a bridge and all its ports to one MTU (default: the smallest of "
        "the bridge, its ports and the default-route interface).",
    )
    m.add_argument("bridge", metavar="BRIDGE")
    m.add_argument("--mtu", type=positive_int, help="the MTU to set (default: smallest on path)")
    _common(m)
    m.set_defaults(handler=_mtu)


def _bridge(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.fix import EditRefused, apply_bridge_fix, etc_root, read_bridge_fix

    if args.apply or args.netns:
        require_root("fix bridge --apply" if args.apply else "reading another namespace")
    plan = read_bridge_fix(
        args.bridge,
        args.netns,
        mac_spec=args.mac,
        persist=args.persist,
        etc_root=etc_root(args.etc_root),
        arp_notify=args.arp_notify,
    )
    result = None
    if args.apply and not plan.refusal:
        result = apply_bridge_fix(plan, args.netns)
    if args.json:
        json.dump(_bridge_json(plan, result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_bridge(plan, result, applying=args.apply)
    if plan.refusal:
        raise EditRefused(plan.refusal)
    return ExitStatus.OK


def _bridge_json(plan: BridgeFixPlan, result: BridgeFixResult | None) -> dict[str, Any]:
    return {
        "bridge": plan.bridge,
        "netns": plan.netns,
        "before": {"mac": plan.state.mac, "addr_assign_type": plan.state.addr_assign_type},
        "mac": plan.mac,
        "mac_source": plan.mac_source,
        "persist": plan.persist,
        "steps": plan.steps(),
        "edits": [
            {"path": str(e.path), "manager": e.manager, "changed": e.changed, "diff": e.diff()}
            for e in plan.edits
        ],
        "conntrack_leftovers": None if plan.leftovers is None else list(plan.leftovers),
        "refusal": plan.refusal,
        "applied": result is not None,
        "changed": list(result.changed) if result else [],
        "backups": [str(p) for p in result.backups] if result else [],
    }


def _print_bridge(plan: BridgeFixPlan, result: BridgeFixResult | None, *, applying: bool) -> None:
    console = Console()
    verb = "Done" if result is not None else "Plan (dry run; add --apply to do it)"
    if plan.refusal:
        verb = "Refused; nothing was changed" if applying else "Plan (would refuse)"
    console.print(f"[bold]{verb}[/bold] for bridge {plan.bridge}:")
    for step in plan.steps():
        console.print(f"  - {step}", highlight=False)
    for e in plan.edits:
        if e.changed:
            diff = Syntax(e.diff(), "diff", theme="ansi_dark", background_color="default")
            console.print(diff)
    if result is not None:
        if not result.changed:
            console.print("Nothing to change: already fixed.")
        for line in result.changed:
            console.print(f"  changed: {line}", highlight=False)


def _sysctl(args: argparse.Namespace, fix: SysctlFix) -> ExitStatus:
    from netsleuth.fix import fix_sysctl

    if args.apply or args.netns:
        require_root("changing sysctls" if args.apply else "reading another namespace")
    change = fix_sysctl(args.netns, fix, apply=args.apply)
    if args.json:
        json.dump(change.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not change.needed:
        print(f"{fix.key} is already {fix.value}: nothing to change.")
    elif change.applied:
        print(f"set {fix.key} {change.before} -> {change.after}")
        print(f"to keep it after a reboot: {fix.persist_hint}")
    else:
        print(f"would set {fix.key} {change.before} -> {fix.value} (dry run; add --apply)")
        print(f"to keep it after a reboot: {fix.persist_hint}")
    return ExitStatus.OK


def _arp_notify(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.fix import arp_notify_fix

    return _sysctl(args, arp_notify_fix(args.bridge))


def _ip_forward(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.fix import IP_FORWARD

    return _sysctl(args, IP_FORWARD)


def _mtu(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.fix import apply_mtu_plan, read_mtu_plan

    if args.apply or args.netns:
        require_root("changing MTUs" if args.apply else "reading another namespace")
    plan = read_mtu_plan(args.netns, args.bridge, args.mtu)
    if args.apply:
        apply_mtu_plan(plan, args.netns)
    if args.json:
        doc = {"bridge": plan.bridge, "mtu": plan.mtu, "before": plan.before, "applied": args.apply}
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not plan.todo:
        print(f"{plan.bridge} and its ports all have MTU {plan.mtu}: nothing to change.")
    else:
        verb = "set" if args.apply else "would set"
        for name, old in plan.todo.items():
            print(f"{verb} {name} MTU {old} -> {plan.mtu}")
        if not args.apply:
            print("(dry run; add --apply). Persist: 'mtu N' in ifupdown, MTUBytes= in networkd.")
    return ExitStatus.OK
