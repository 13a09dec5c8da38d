"""Orchestration: pick the namespaces to read, read them, run the rules.

:func:`audit` is pure (snapshots in, findings out); :func:`run_doctor` does
the reading and is what the CLI and the lab call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from netsleuth.audit.readers import Roots, read_snapshot, read_snapshot_in, resolver_in
from netsleuth.audit.rules import RULES, Rule
from netsleuth.audit.snapshot import HostSnapshot
from netsleuth.errors import InvalidArgument, TargetNotFound
from netsleuth.model import Finding

__all__ = ["audit", "container_namespaces", "read_targets", "run_doctor"]


def audit(snapshots: Iterable[HostSnapshot], rules: Sequence[Rule] = RULES) -> list[Finding]:
    """Run every rule on every snapshot; most severe first, then by rule order."""
    order = {r.id: i for i, r in enumerate(rules)}
    findings = [f for snap in snapshots for rule in rules for f in rule.check(snap)]
    return sorted(findings, key=lambda f: (-f.severity, order.get(f.rule, 99), f.subject))


def container_namespaces() -> list[tuple[str, Path, Path]]:
    """(label, netns path, resolv.conf) of every running container the local
    Docker daemon knows, one per distinct namespace; empty without Docker."""
    sock = Path("/var/run/docker.sock")
    if not sock.exists():
        return []
    try:
        import docker

        client = docker.DockerClient(base_url=f"unix://{sock}", timeout=3)
        try:
            containers = client.containers.list()
            out, seen = [], set()
            for c in containers:
                pid = int(c.attrs.get("State", {}).get("Pid") or 0)
                path = Path(f"/proc/{pid}/ns/net")
                try:
                    inode = os.stat(path).st_ino
                except OSError:
                    continue
                if pid and inode not in seen:
                    seen.add(inode)
                    resolv = Path(f"/proc/{pid}/root/etc/resolv.conf")
                    out.append((f"container {c.name}", path, resolv))
            return out
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - Docker is optional evidence
        return []


def read_targets(
    netns: Sequence[str] = (),
    all_netns: bool = False,
    roots: Roots | None = None,
    conntrack_sample: float = 0.0,
) -> list[HostSnapshot]:
    """The snapshots ``doctor`` audits: the host (with the resolv.conf view of
    every named namespace) unless ``netns`` names namespaces; with
    ``all_netns`` also every named namespace and container."""
    from netsleuth.netns import list_named, netns_path

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
            views = [resolver_in(p, label, r) for label, p, r in container_namespaces()]
            extra = tuple(v for v in views if v is not None)
            host = replace(host, resolvers=host.resolvers + extra)
        snaps.append(host)
    for name in netns:
        if "/" in name:
            raise InvalidArgument(f"--netns takes a name from `ip netns list`, not {name!r}")
        path = netns_path(name)
        if not path.exists():
            raise TargetNotFound(f"network namespace {name} does not exist; see `ip netns list`")
        snaps.append(read_snapshot_in(path, name, name=name, conntrack_sample=conntrack_sample))
    if all_netns:
        # Namespaces and containers may go away while we read: skip those.
        for name in [] if netns else named:
            with contextlib.suppress(TargetNotFound):
                snaps.append(read_snapshot_in(netns_path(name), name, name=name))
        for label, path, resolv in container_namespaces():
            with contextlib.suppress(TargetNotFound):
                snaps.append(read_snapshot_in(path, label, resolv_conf=resolv))
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
