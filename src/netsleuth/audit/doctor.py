"""Orchestration: pick the namespaces to read, read them, run the rules.

:func:`audit` is pure (snapshots in, findings out); :func:`run_doctor` does
the reading and is what the CLI and the lab call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from netsleuth.audit.readers import Roots, read_snapshot, read_snapshot_in, resolver_in
from netsleuth.audit.rules import RULES, Rule
from netsleuth.audit.snapshot import HostSnapshot
from netsleuth.errors import InvalidArgument, TargetNotFound
from netsleuth.model import Finding
from netsleuth.netns import Namespace, list_named

__all__ = ["audit", "container_namespaces", "read_targets", "run_doctor"]

DOCKER_SOCKET = Path("/var/run/docker.sock")


def audit(snapshots: Iterable[HostSnapshot], rules: Sequence[Rule] = RULES) -> list[Finding]:
    """Run every rule on every snapshot; most severe first, then by rule order."""
    order = {r.id: i for i, r in enumerate(rules)}
    findings = [f for snap in snapshots for rule in rules for f in rule.check(snap)]
    return sorted(findings, key=lambda f: (-f.severity, order.get(f.rule, 99), f.subject))


def container_namespaces(sock: Path = DOCKER_SOCKET) -> list[tuple[Namespace, Path]]:
    """(namespace labelled ``container NAME``, its resolv.conf) of every
    running container the local Docker daemon knows, one per distinct
    namespace; empty without Docker."""
    from netsleuth.docker.client import api_errors, connect

    if not sock.exists():
        return []
    try:
        with contextlib.closing(connect(f"unix://{sock}", 3)) as client:
            containers = client.containers.list()
    except api_errors():  # Docker is optional evidence
        return []
    out, seen = [], set()
    for c in containers:
        pid = int(c.attrs.get("State", {}).get("Pid") or 0)
        if not pid:
            continue
        try:
            ns = Namespace.of_pid(pid, label=f"container {c.name}")
            inode = ns.inode()
        except TargetNotFound:  # exited since it was listed
            continue
        if inode not in seen:
            seen.add(inode)
            out.append((ns, Path(f"/proc/{pid}/root/etc/resolv.conf")))
    return out


def read_targets(
    netns: Sequence[str] = (),
    all_netns: bool = False,
    roots: Roots | None = None,
    conntrack_sample: float = 0.0,
) -> list[HostSnapshot]:
    """The snapshots ``doctor`` audits: the host (with the resolv.conf view of
    every named namespace) unless ``netns`` names namespaces; with
    ``all_netns`` also every named namespace and container."""
    roots = roots or Roots()
    named = list_named()
    snaps: list[HostSnapshot] = []
    if not netns:
        host = read_snapshot(
            "host",
            roots,
            namespaces=[] if all_netns else named,
            conntrack_sample=conntrack_sample,
        )
        if not all_netns:  # containers' resolv.conf, as the host's bridges reach them
            views = [resolver_in(ns, resolv) for ns, resolv in container_namespaces()]
            extra = tuple(v for v in views if v is not None)
            host = replace(host, resolvers=host.resolvers + extra)
        snaps.append(host)
    for name in netns:
        if "/" in name:
            raise InvalidArgument(f"--netns takes a name from `ip netns list`, not {name!r}")
        ns = Namespace.named(name)
        snaps.append(read_snapshot_in(ns, conntrack_sample=conntrack_sample))
    if all_netns:
        # Namespaces and containers may go away while we read: skip those.
        for name in [] if netns else named:
            with contextlib.suppress(TargetNotFound):
                snaps.append(read_snapshot_in(Namespace.named(name)))
        for ns, resolv in container_namespaces():
            with contextlib.suppress(TargetNotFound):
                snaps.append(read_snapshot_in(ns, resolv_conf=resolv))
    return snaps


def run_doctor(
    netns: str | Sequence[str] | None = None,
    all_netns: bool = False,
    roots: Roots | None = None,
    rules: Sequence[Rule] = RULES,
    conntrack_sample: float = 0.0,
) -> list[Finding]:
    """Read the host (or the named namespaces) and audit it."""
    names = [netns] if isinstance(netns, str) else list(netns or [])
    return audit(read_targets(names, all_netns, roots, conntrack_sample), rules)
