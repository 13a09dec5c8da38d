"""`netsleuth capture`: DNS and ARP frames on several interfaces in several
namespaces at once, into one pcapng file for `netsleuth explain`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netsleuth.cli._common import (
    ExitStatus,
    add_docker_host_option,
    add_duration_option,
    add_json_option,
    add_target_option,
    positive_int,
    require_root,
)
from netsleuth.errors import InvalidArgument, TargetNotFound
from netsleuth.packets.capture import CaptureResult, CaptureSpec, capture, lab_specs

if TYPE_CHECKING:
    from netsleuth.packets.droprecord import DropRecorder

__all__ = ["add_parser", "parse_iface"]

_ROLES = ("client", "bridge", "uplink")

_DESCRIPTION = """\
Capture DNS (UDP port 53) and ARP frames at once on every hop a container's
query crosses — its veth or bridge port, the bridge, the uplink — each socket
opened inside the interface's own network namespace, into one pcapng file
(one interface block per interface, named, with its namespace and role).
Then run `netsleuth explain FILE`.

The bridge is not made promiscuous, and on an interface with the bridge
role frames not for this host are left out (counted): a capture on the
bridge shows what it handed up to the host, so a query sent to a stale
gateway MAC is missing there, exactly as the host never saw it — even while
a tcpdump elsewhere has made the bridge promiscuous.

Pick the interfaces with --target (netns:NAME, pid:PID or
container:NAME_OR_ID: its veth's peer, that peer's bridge and the uplink,
found from the kernel's topology), with --lab ID (a running `netsleuth lab`,
by its run id), or name them with --iface NETNS:IFNAME[:ROLE], repeated
(NETNS "host" is this process's own namespace; ROLE is client, bridge or
uplink and lets explain tell the hops apart without NAT). Needs root.

With --drops, the kernel's packet drops (reason, function, device, 5-tuple;
see `netsleuth drops`) in the captured namespaces (and the target's or the
lab's containers') are recorded too, into FILE.drops.jsonl next to the
capture, on the packets' clock; `netsleuth explain FILE` then says which
reason and function dropped each lost query. Where the kernel or the
machine cannot trace drops, one line says so and the capture goes on.

examples:
  netsleuth capture --target container:web --duration 60 -w web.pcapng
  netsleuth capture --lab 3fa2c1 --duration 60 -w lab.pcapng
  netsleuth capture --lab 3fa2c1 --duration 60 -w lab.pcapng --drops
  netsleuth capture --iface host:veth1a2b:client --iface host:docker0:bridge \\
      --iface host:eth0:uplink --count 10000 -w host.pcapng
"""


def parse_iface(text: str) -> CaptureSpec:
    """``NETNS:IFNAME[:ROLE]`` → :class:`CaptureSpec` (``host`` = own namespace)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(
            f"--iface {text!r}: write NETNS:IFNAME or NETNS:IFNAME:ROLE, e.g. host:eth0:uplink"
        )
    role = parts[2] if len(parts) == 3 else ""
    if role and role not in _ROLES:
        raise InvalidArgument(f"--iface {text!r}: ROLE must be one of {', '.join(_ROLES)}")
    ns = "" if parts[0] == "host" else parts[0]
    return CaptureSpec(ns, parts[1], role)


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "capture",
        help="capture DNS+ARP on a container's veth, the bridge and the uplink at once",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    add_target_option(where, help="capture the hops of netns:NAME, pid:PID or container:NAME_OR_ID")
    where.add_argument("--lab", metavar="ID", help="capture the hops of the running lab ID")
    where.add_argument(
        "--iface",
        action="append",
        metavar="NETNS:IFNAME[:ROLE]",
        help="an interface to capture on (repeat for each hop)",
    )
    parser.add_argument("-w", "--write", required=True, metavar="FILE", help="pcapng to write")
    add_duration_option(parser, help="stop after S seconds")
    parser.add_argument("--count", type=positive_int, metavar="N", help="stop after N frames")
    parser.add_argument(
        "--drops",
        action="store_true",
        help="also record the kernel's drops in these namespaces into FILE.drops.jsonl "
        "(for explain)",
    )
    add_json_option(parser, help="machine-readable summary")
    add_docker_host_option(
        parser,
        help="Docker daemon for container: targets (default unix:///var/run/docker.sock; "
        "given several, the first)",
    )
    parser.set_defaults(handler=run)


Namespaces = dict[str, str | Path | None]
"""label → namespace path (None: ours), for the drop recorder."""


def _specs(args: argparse.Namespace) -> tuple[list[CaptureSpec], Namespaces]:
    """The interfaces to capture on, and the namespaces beyond theirs whose
    drops matter too (the target's; the lab's containers')."""
    if args.target:
        from netsleuth.packets.hops import target_specs
        from netsleuth.probes.spec import parse_resolv_conf
        from netsleuth.watch.targets import parse_target

        docker_host = args.docker_host[0] if args.docker_host else None
        target = parse_target(args.target, docker_host=docker_host)
        if target.kind == "host":
            raise InvalidArgument(
                "--target host: the host has no single path to follow; "
                "give netns:NAME, pid:PID or container:NAME_OR_ID, or --iface"
            )
        location = target.locate()
        if location is None or location.path is None:
            raise TargetNotFound(f"{target.label} was not found (is it running?)")
        try:
            servers = parse_resolv_conf(location.resolv_conf().read_text())
        except OSError:
            servers = []
        specs = target_specs(location.path, target.label, servers[0] if servers else None)
        return specs, {target.label: location.path}
    if args.lab:
        from netsleuth import netns
        from netsleuth.lab import load_topology

        topo = load_topology(args.lab)
        specs = lab_specs(topo.host_ns, list(topo.ports.values()), topo.bridge, topo.uplink)
        return specs, {name: netns.netns_path(name) for name in topo.container_ns}
    return [parse_iface(text) for text in args.iface], {}


def _drop_namespaces(specs: list[CaptureSpec], extra: Namespaces) -> Namespaces:
    """The captured namespaces (by their names; ``host`` for ours), then ``extra``."""
    from netsleuth import netns

    out: Namespaces = {}
    for spec in specs:
        out.setdefault(spec.netns or "host", netns.netns_path(spec.netns) if spec.netns else None)
    for label, path in extra.items():
        out.setdefault(label, path)
    return out


def _recorder(
    args: argparse.Namespace, specs: list[CaptureSpec], extra: Namespaces
) -> DropRecorder | None:
    """Start ``--drops``' recorder (waits for the tracer); None without --drops."""
    if not args.drops:
        return None
    from netsleuth.packets.droprecord import DropRecorder
    from netsleuth.packets.drops import sidecar_path

    out = Path(args.write)
    if out.exists() and not out.is_file():
        raise InvalidArgument(
            f"--drops writes its file next to the capture; -w {args.write} is not a regular file"
        )
    path = sidecar_path(out)
    recorder = DropRecorder(path, _drop_namespaces(specs, extra), capture=out.name)
    print(
        "starting the drop source (bpftrace compiles its program: a few seconds) ...",
        file=sys.stderr,
    )
    try:
        status = recorder.start()
    except BaseException:
        recorder.stop()
        raise
    if recorder.available:
        print(f"recording kernel drops to {path}: {status}", file=sys.stderr)
    else:
        print(f"{status}; capturing without drops", file=sys.stderr)
    return recorder


def run(args: argparse.Namespace) -> ExitStatus:
    if args.duration is None and args.count is None:
        raise InvalidArgument("give --duration S or --count N so the capture ends")
    require_root("capture")
    specs, extra = _specs(args)
    hops = ", ".join(f"{s.label} ({s.role})" if s.role else s.label for s in specs)
    limits = []
    if args.duration:
        limits.append(f"{args.duration:g} s")
    if args.count:
        limits.append(f"{args.count} frames")
    recorder = _recorder(args, specs, extra)
    print(f"capturing on {hops} for {' or '.join(limits)}; Ctrl-C ends it", file=sys.stderr)
    try:
        result = capture(specs, args.write, duration=args.duration, count=args.count)
    finally:
        if recorder is not None:
            recorder.stop()
    if args.json:
        out = as_dict(result)
        if recorder is not None:
            out["drops"] = _drops_dict(recorder)
        print(json.dumps(out, indent=2))
    else:
        print(
            f"wrote {result.frames} frames in {result.seconds:.1f} s to {result.path}"
            + (" (interrupted)" if result.interrupted else "")
        )
        for c in result.interfaces:
            role = f" ({c.spec.role})" if c.spec.role else ""
            drops = f", {c.kernel_drops} dropped by the kernel" if c.kernel_drops else ""
            if c.went_down:
                drops += f", went down {c.went_down} time(s)"
            if c.not_for_host:
                drops += (
                    f", {c.not_for_host} not for this host left out (to another MAC: a port's "
                    "own, or any while promiscuous)"
                )
            print(f"  {c.spec.label}{role}: {c.frames} frames{drops}")
        if recorder is not None and recorder.available:
            lost = recorder.source.lost
            print(
                f"wrote {recorder.written} kernel drops to {recorder.path}"
                + (f" ({lost} more the tracer could not read)" if lost else "")
            )
        elif recorder is not None:
            print(f"no kernel drops recorded: {recorder.status}")
        print(f"next: netsleuth explain {result.path}")
    return ExitStatus.OK


def _drops_dict(recorder: DropRecorder) -> dict[str, object]:
    return {
        "path": str(recorder.path),
        "recorded": recorder.available,
        "status": recorder.status,
        "mechanism": recorder.source.mechanism,
        "drops": recorder.written,
        "lost": recorder.source.lost,
    }


def as_dict(result: CaptureResult) -> dict[str, object]:
    return {
        "path": result.path,
        "frames": result.frames,
        "seconds": round(result.seconds, 3),
        "interrupted": result.interrupted,
        "interfaces": [
            {
                "netns": c.spec.netns or "host",
                "ifname": c.spec.ifname,
                "role": c.spec.role,
                "frames": c.frames,
                "kernel_drops": c.kernel_drops,
                "not_for_host": c.not_for_host,
                "went_down": c.went_down,
            }
            for c in result.interfaces
        ],
    }
