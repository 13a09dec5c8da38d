"""`netsleuth fix`: pin a bridge MAC now and in the network configuration;
set arp_notify, ip_forward, MTUs and rp_filter; add resolv.conf options;
size the conntrack and neighbour tables. Dry-run unless --apply."""

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
    from netsleuth.fix.resolv import ResolvPlan
    from netsleuth.fix.sysctld import SysctlPlan

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
        help="pin a bridge MAC now and persistently; arp_notify, ip_forward, MTU, rp_filter, "
        "resolv.conf options, conntrack and neighbour table sizes",
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

    r = fsub.add_parser(
        "rp-filter",
        help="loose reverse-path filtering on an interface (rule rp-filter-strict-asymmetric)",
        description="Set net.ipv4.conf.IFACE.rp_filter=2 (loose) where the interface filters "
        "strictly (the larger of conf.all and conf.IFACE applies), and keep it in "
        "/etc/sysctl.d/90-netsleuth-rp-filter.conf (host only: a namespace's settings last "
        "as long as it does). IFACE 'all' sets conf.all to 2 when any interface is strict.",
        epilog=_PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("iface", metavar="IFACE", help="interface name, or all")
    _persist_options(r)
    _common(r)
    r.set_defaults(handler=_rp_filter)

    o = fsub.add_parser(
        "resolv-options",
        help="add options single-request-reopen to a namespace's resolv.conf "
        "(rule resolver-parallel-queries)",
        description="Add `options single-request-reopen` to /etc/netns/NAME/resolv.conf (what "
        "`ip netns exec` binds over /etc/resolv.conf) so glibc stops sending A and AAAA from "
        "one socket at once through NAT. The file is backed up and rewritten in place; a "
        "second run changes nothing. For container:NAME the daemon.json dns-opts to set are "
        "printed instead (Docker writes containers' resolv.conf itself).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    o.add_argument("netns_target", metavar="NETNS", help="NAME or netns:NAME, or container:NAME")
    o.add_argument(
        "--ndots",
        type=_ndots,
        metavar="N",
        help="also set options ndots:N (fewer searched names per lookup; rule "
        "resolver-search-amplification). Short names then need N dots to skip the search list",
    )
    o.add_argument(
        "--copy-host",
        action="store_true",
        help="a namespace without its own resolv.conf gets a copy of the host's with the option",
    )
    o.add_argument("--apply", action="store_true", help="make the change (default: dry run)")
    add_json_option(o, help="print the plan/result as JSON")
    o.add_argument("--etc-root", type=Path, help=argparse.SUPPRESS)
    o.set_defaults(handler=_resolv_options)

    c = fsub.add_parser(
        "conntrack-max",
        help="size nf_conntrack_max from the current usage (rule conntrack-pressure)",
        description="Plan net.netfilter.nf_conntrack_max (and the hash size) from the fullest "
        "namespace's entry count: the peak at a quarter of the new limit, a power of two, "
        "never lower than now; nothing while the peak is below half the limit. Machine-wide: "
        "acts on the host only. Kept in /etc/sysctl.d/90-netsleuth-conntrack-max.conf.",
        epilog=_PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--max", type=positive_int, metavar="N", help="set this limit instead")
    _machine_options(c)
    c.set_defaults(handler=_conntrack_max)

    n = fsub.add_parser(
        "neigh-thresh",
        help="size the neighbour table's gc_thresh1/2/3 from its entries (rule "
        "neigh-table-pressure)",
        description="Plan net.ipv4.neigh.default.gc_thresh3 from the entries of the IPv4 "
        "neighbour table (one for all namespaces): the entries at a quarter of it, a power of "
        "two, never lower than now (at least doubled if the table ever overflowed); "
        "gc_thresh2 = half, gc_thresh1 = an eighth. Machine-wide: acts on the host only. "
        "Kept in /etc/sysctl.d/90-netsleuth-neigh-thresh.conf.",
        epilog=_PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    n.add_argument("--thresh3", type=positive_int, metavar="N", help="set this gc_thresh3 instead")
    _machine_options(n)
    n.set_defaults(handler=_neigh_thresh)


_PLAN_EPILOG = """\
Without --apply the plan is printed with the unified diff of the sysctl.d file.
--apply sets the kernel values, then writes the file (a backup first if it
existed); values already right are not touched, so a second run changes
nothing. --persist-only writes only the file (applied at the next boot or
`sysctl --system`); --no-persist changes only the running kernel. A file read
after ours at boot that sets the same key is named in the plan: it would win.
"""


def _ndots(text: str) -> int:
    value = positive_int(text) if text != "0" else 0
    if value > 15:
        raise argparse.ArgumentTypeError("ndots is at most 15")
    return value


def _persist_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--persist-only",
        action="store_true",
        help="only write the sysctl.d file; leave the running kernel as it is",
    )
    group.add_argument(
        "--no-persist", action="store_true", help="only change the running kernel; no file"
    )
    p.add_argument("--etc-root", type=Path, help=argparse.SUPPRESS)


def _machine_options(p: argparse.ArgumentParser) -> None:
    _persist_options(p)
    p.add_argument("--apply", action="store_true", help="make the change (default: dry run)")
    add_json_option(p, help="print the plan/result as JSON")


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
            console.print(f"  changed: {line}", highlight=False, markup=False)


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


def _print_diff(console: Console, text: str) -> None:
    """A unified diff: coloured on a terminal, verbatim otherwise (a file's
    lines must not be wrapped or cut)."""
    if console.is_terminal:
        console.print(Syntax(text, "diff", theme="ansi_dark", background_color="default"))
    else:
        sys.stdout.write(text)


def _sysctl_plan(args: argparse.Namespace, plan: SysctlPlan, netns: str | None) -> ExitStatus:
    """Print or carry out a sysctl plan (rp-filter, conntrack-max, neigh-thresh)."""
    from netsleuth.fix.sysctld import apply_sysctl_plan

    result = apply_sysctl_plan(plan, netns) if args.apply else None
    if args.json:
        doc = plan.to_json() | {
            "applied": result is not None,
            "changed": list(result.changed) if result else [],
            "backups": [str(p) for p in result.backups] if result else [],
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return ExitStatus.OK
    console = Console()
    if not plan.changes_anything:
        console.print(f"[bold]{plan.what}[/bold]: nothing to change.")
    else:
        verb = "Done" if result is not None else "Plan (dry run; add --apply to do it)"
        console.print(f"[bold]{verb}[/bold] for {plan.what}:")
    for step in plan.steps():
        console.print(f"  - {step}", highlight=False, soft_wrap=True, markup=False)
    for note in plan.notes:
        console.print(f"  note: {note}", highlight=False, soft_wrap=True, markup=False)
    if plan.edit is not None and plan.edit.changed and result is None:
        _print_diff(console, plan.edit.diff())
    for line in result.changed if result else ():
        console.print(f"  changed: {line}", highlight=False, markup=False)
    return ExitStatus.OK


def _rp_filter(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.fix import etc_root
    from netsleuth.fix.rpfilter import read_rp_filter_plan

    if args.apply or args.netns:
        require_root("changing sysctls" if args.apply else "reading another namespace")
    plan = read_rp_filter_plan(
        args.iface,
        args.netns,
        etc_root=etc_root(args.etc_root),
        persist=not args.no_persist,
        runtime=not args.persist_only,
    )
    return _sysctl_plan(args, plan, args.netns)


def _conntrack_max(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.fix import etc_root
    from netsleuth.fix.tables import read_conntrack_plan

    if args.apply:
        require_root("changing nf_conntrack_max")
    plan = read_conntrack_plan(
        args.max,
        etc_root=etc_root(args.etc_root),
        persist=not args.no_persist,
        runtime=not args.persist_only,
    )
    return _sysctl_plan(args, plan, None)


def _neigh_thresh(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.fix import etc_root
    from netsleuth.fix.tables import read_neigh_plan

    if args.apply:
        require_root("changing gc_thresh1/2/3")
    plan = read_neigh_plan(
        args.thresh3,
        etc_root=etc_root(args.etc_root),
        persist=not args.no_persist,
        runtime=not args.persist_only,
    )
    return _sysctl_plan(args, plan, None)


def _resolv_options(args: argparse.Namespace) -> ExitStatus:
    from netsleuth.fix import etc_root
    from netsleuth.fix.configs import EditRefused
    from netsleuth.fix.resolv import apply_resolv_plan, read_resolv_plan

    container = args.netns_target.startswith("container:")
    if args.apply and not container:
        require_root("writing /etc/netns/NAME/resolv.conf")
    plan = read_resolv_plan(
        args.netns_target, etc_root=etc_root(args.etc_root), ndots=args.ndots,
        copy_host=args.copy_host,
    )  # fmt: skip
    changed: list[str] = []
    backups: list[Path] = []
    applying = args.apply and not container and not plan.refusal
    if applying:
        changed, backups = apply_resolv_plan(plan)
    if args.json:
        doc = plan.to_json() | {
            "applied": applying,
            "changed": changed,
            "backups": [str(p) for p in backups],
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_resolv(plan, changed, applying)
    if plan.refusal:
        raise EditRefused(plan.refusal)
    if args.apply and container:
        apply_resolv_plan(plan)  # refuses with the one-line instruction
    return ExitStatus.OK


def _print_resolv(plan: ResolvPlan, changed: list[str], applied: bool) -> None:
    console = Console()
    if plan.target.kind == "netns" and not plan.refusal:
        head = (
            "nothing to change"
            if not plan.changes_anything
            else ("Done" if applied else "Plan (dry run; add --apply to do it)")
        )
        console.print(f"[bold]resolv-options {plan.target.label}[/bold]: {head}")
    for step in plan.steps():
        console.print(f"  - {step}", highlight=False, soft_wrap=True, markup=False)
    for note in plan.notes:
        console.print(f"  note: {note}", highlight=False, soft_wrap=True, markup=False)
    if plan.edit is not None and plan.edit.changed and not applied:
        _print_diff(console, plan.edit.diff())
    for line in changed:
        console.print(f"  changed: {line}", highlight=False, markup=False)
