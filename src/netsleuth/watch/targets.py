"""Targets: where probes run from.

``host`` (the host namespace, or the lab's "host"), ``netns:NAME``,
``pid:PID`` and ``container:NAME_OR_ID`` (through the Docker Engine API).
Each resolves to the path of a network namespace, which can vanish and come
back (a container restart): :meth:`Target.locate` answers "where is it now?"
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from netsleuth import netns
from netsleuth.errors import InvalidArgument, NetsleuthError

__all__ = ["DEFAULT_DOCKER_HOST", "Location", "Target", "parse_target"]

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

TargetKind = Literal["host", "netns", "pid", "container"]


@dataclass(frozen=True, slots=True)
class Location:
    path: str | None  # None: our own namespace
    netns_name: str | None  # for /etc/netns/NAME files
    identity: tuple[int, int]  # (st_dev, st_ino) of the namespace: changes when re-created
    sysfs: Path | None = None  # where this namespace's /sys can be read, if known

    def resolv_conf(self) -> Path:
        """The resolv.conf the target's processes read (best guess from outside:
        ``/etc/netns/NAME/``, the process's root, or the host's)."""
        if self.netns_name:
            own = Path("/etc/netns") / self.netns_name / "resolv.conf"
            if own.exists():
                return own
        if self.sysfs is not None and self.sysfs != Path("/sys"):
            return self.sysfs.parent / "etc" / "resolv.conf"
        return Path("/etc/resolv.conf")


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    ref: str = ""
    docker_host: str | None = None
    host_netns: str | None = None  # the namespace playing "host" (the lab's), None: ours

    @property
    def label(self) -> str:
        return "host" if self.kind == "host" else f"{self.kind}:{self.ref}"

    def locate(self) -> Location | None:
        """Where the target's namespace is now, or None if it is gone."""
        if self.kind == "host":
            if self.host_netns is None:
                st = os.stat("/proc/self/ns/net")
                return Location(None, None, (st.st_dev, st.st_ino), Path("/sys"))
            return _stat_location(str(netns.netns_path(self.host_netns)), self.host_netns)
        if self.kind == "netns":
            return _stat_location(str(netns.netns_path(self.ref)), self.ref)
        if self.kind == "pid":
            loc = _stat_location(f"/proc/{self.ref}/ns/net", None)
            return loc and Location(
                loc.path, None, loc.identity, Path(f"/proc/{self.ref}/root/sys")
            )
        from netsleuth.docker import resolve_container  # only Docker users need the SDK

        try:
            ref = resolve_container(self.docker_host or DEFAULT_DOCKER_HOST, self.ref)
        except NetsleuthError:
            return None
        pid = ref.pid
        loc = _stat_location(f"/proc/{pid}/ns/net", None)
        return loc and Location(loc.path, None, loc.identity, Path(f"/proc/{pid}/root/sys"))


def _stat_location(path: str, name: str | None) -> Location | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return Location(path, name, (st.st_dev, st.st_ino))


def parse_target(
    text: str, docker_host: str | None = None, host_netns: str | None = None
) -> Target:
    if text == "host":
        return Target("host", host_netns=host_netns)
    kind, sep, ref = text.partition(":")
    if not sep or not ref:
        raise InvalidArgument(
            f"target {text!r}: expected host, netns:NAME, pid:PID or container:NAME_OR_ID"
        )
    if kind == "netns":
        return Target("netns", ref)
    if kind == "pid":
        if not ref.isdigit():
            raise InvalidArgument(f"target {text!r}: PID must be a number")
        return Target("pid", ref)
    if kind == "container":
        return Target("container", ref, docker_host=docker_host)
    raise InvalidArgument(
        f"target {text!r}: unknown kind {kind!r}; use host, netns:NAME, pid:PID or container:NAME"
    )
