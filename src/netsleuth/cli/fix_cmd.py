"""`netsleuth fix`: pin a bridge MAC now and in the network configuration;
set arp_notify, ip_forward and MTUs. Dry-run unless --apply."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.syntax import Syntax

from netsleuth.cli import EXIT_OK
from netsleuth.cli._common import positive_int, require_root
from netsleuth.errors import InvalidArgument

__all__ = ["PERSIST_CHOICES", "add_parser"]

# The same tuple as netsleuth.fix.PERSIST_CHOICES (a test keeps them equal);
# repeated so `--help` does not load netlink and YAML libraries.
PERSIST_CHOICES = ("auto", "ifupdown", "networkd", "networkmanager", "netplan", "none")

ETC_ROOT_ENV = "NETSLEUTH_ETC_ROOT"

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
    p.add_argument("--netns", metavar="NAME", help="act inside this named network namespace")
    p.add_argument("--apply", action="store_true", help="make the change (default: dry run)")
    p.add_argument("--json", action="store_true", help="print the plan/result as JSON")


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "fix",
        help="pin a bridge MAC now and persistently; arp_notify, ip_forward, MTU",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fsub = parser.add_subparsers(dest="fix_what", metavar="WHAT")
    parser.set_defaults(handler=lambda args: _usage(parser))

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


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _etc_root(args: argparse.Namespace) -> Path:
    if args.etc_root is not None:
        return Path(args.etc_root)
    return Path(os.environ.get(ETC_ROOT_ENV, "/etc"))


def _bridge(args: argparse.Namespace) -> int:
    from netsleuth.audit import bridge_mac_state
    from netsleuth.fix import (
        EditRefused,
        apply_bridge_fix,
        find_definitions,
        in_netns,
        plan_bridge_fix,
        read_machine_id,
    )

    if args.apply or args.netns:
        require_root("fix bridge --apply" if args.apply else "reading another namespace")
    etc_root = _etc_root(args)
    state = bridge_mac_state(args.netns, args.bridge)
    machine_id = read_machine_id(etc_root) if args.mac == "auto" else None
    arp = None
    if args.arp_notify:
        key = f"net.ipv4.conf.{args.bridge}.arp_notify"
        arp = in_netns(args.netns, lambda: _read_sysctl(key))
    definitions = [] if args.persist == "none" else find_definitions(etc_root, args.bridge)
    leftovers = _conntrack_leftovers(args.netns, args.bridge)
    plan = plan_bridge_fix(
        state,
        args.netns or "host",
        mac_spec=args.mac,
        persist=args.persist,
        definitions=definitions,
        etc_root=etc_root,
        machine_id=machine_id,
        arp_notify=arp,
        leftovers=leftovers,
    )
    result = None
    if args.apply and not plan.refusal:
        result = apply_bridge_fix(plan, args.netns)
    if args.json:
        doc: dict[str, Any] = {
            "bridge": plan.bridge,
            "netns": plan.netns,
            "before": {"mac": state.mac, "addr_assign_type": state.addr_assign_type},
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
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = Console()
        verb = "Done" if result is not None else "Plan (dry run; add --apply to do it)"
        if plan.refusal:
            verb = "Refused; nothing was changed" if args.apply else "Plan (would refuse)"
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
    if plan.refusal:
        raise EditRefused(plan.refusal)
    return EXIT_OK


def _conntrack_leftovers(netns: str | None, bridge: str) -> tuple[str, ...] | None:
    """Conntrack entries the bridge's flooding left without NAT (None: cannot read them)."""
    import os

    from pyroute2.netlink.exceptions import NetlinkError

    from netsleuth.fix.conntrack import delete_leftovers

    if os.geteuid() != 0:
        return None
    try:
        return tuple(e.label for e in delete_leftovers(netns, bridge, dry_run=True))
    except (NetlinkError, OSError):  # no conntrack in this kernel or namespace
        return None


def _read_sysctl(key: str) -> str:
    from netsleuth.netns import sysctl_path

    try:
        return sysctl_path(key).read_text().strip()
    except FileNotFoundError:
        raise InvalidArgument(f"no {key} here: is the interface name right?") from None


def _simple(args: argparse.Namespace, key: str, value: str, persist_hint: str) -> int:
    from netsleuth.fix import in_netns, set_sysctl

    if args.apply or args.netns:
        require_root("changing sysctls" if args.apply else "reading another namespace")
    current = in_netns(args.netns, lambda: _read_sysctl(key))
    if args.apply:
        old, new = set_sysctl(args.netns, key, value)
    else:
        old, new = current, current
    doc = {"key": key, "before": old, "after": new, "wanted": value, "applied": args.apply}
    if args.json:
        json.dump({**doc, "persist": persist_hint}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif current == value:
        print(f"{key} is already {value}: nothing to change.")
    elif args.apply:
        print(f"set {key} {old} -> {new}\nto keep it after a reboot: {persist_hint}")
    else:
        print(f"would set {key} {current} -> {value} (dry run; add --apply)")
        print(f"to keep it after a reboot: {persist_hint}")
    return EXIT_OK


def _arp_notify(args: argparse.Namespace) -> int:
    key = f"net.ipv4.conf.{args.bridge}.arp_notify"
    hint = (
        f"ifupdown: 'post-up sysctl -w {key}=1' in the bridge's stanza; better: "
        f"netsleuth fix bridge {args.bridge} (pins the MAC, no announcement needed)"
    )
    return _simple(args, key, "1", hint)


def _ip_forward(args: argparse.Namespace) -> int:
    hint = "echo net.ipv4.ip_forward=1 > /etc/sysctl.d/60-ip-forward.conf"
    return _simple(args, "net.ipv4.ip_forward", "1", hint)


def _mtu(args: argparse.Namespace) -> int:
    if args.apply or args.netns:
        require_root("changing MTUs" if args.apply else "reading another namespace")
    from pyroute2 import IPRoute

    from netsleuth.fix import in_netns, set_link_mtu

    def read() -> tuple[dict[str, int], int | None]:
        with IPRoute() as ipr:
            links = {m["index"]: m for m in ipr.get_links()}
            br = [m for m in links.values() if m.get("ifname") == args.bridge]
            if not br:
                raise InvalidArgument(f"no interface {args.bridge} here; check `ip link`")
            idx = br[0]["index"]
            mtus = {
                m.get("ifname"): int(m.get("mtu"))
                for m in links.values()
                if m["index"] == idx or m.get("master") == idx
            }
            egress = [
                links[r.get("oif")].get("mtu")
                for r in ipr.get_routes(family=2, table=254)
                if r["dst_len"] == 0 and r.get("oif") in links and r.get("oif") != idx
            ]
            return mtus, min(egress) if egress else None

    mtus, egress = in_netns(args.netns, read)
    target = args.mtu or min([*mtus.values(), *([egress] if egress else [])])
    todo = {name: mtu for name, mtu in mtus.items() if mtu != target}
    done = {}
    if args.apply:
        # Ports first: a bridge cannot be set above its smallest port.
        for name in sorted(todo, key=lambda n: n == args.bridge):
            done[name] = set_link_mtu(args.netns, name, target)
    if args.json:
        json.dump(
            {"bridge": args.bridge, "mtu": target, "before": mtus, "applied": args.apply},
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    elif not todo:
        print(f"{args.bridge} and its ports all have MTU {target}: nothing to change.")
    else:
        verb = "set" if args.apply else "would set"
        for name, old in todo.items():
            print(f"{verb} {name} MTU {old} -> {target}")
        if not args.apply:
            print("(dry run; add --apply). Persist: 'mtu N' in ifupdown, MTUBytes= in networkd.")
    return EXIT_OK
