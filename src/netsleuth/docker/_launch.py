"""Exec a program (dockerd) inside a named network namespace, in a private
mount namespace where ``/sys`` shows that network namespace and the cgroup
hierarchies are still mounted.

``ip netns exec`` remounts ``/sys`` and so loses ``/sys/fs/cgroup``; dockerd
then refuses to start ("Devices cgroup isn't mounted"). This launcher keeps
the cgroup mounts: it bind-mounts them aside, remounts sysfs, and moves them
back. Mounts made later by the program (overlay layers, namespace bind
mounts) stay in the private mount namespace and vanish with its last process.

Run as ``python -m netsleuth.docker._launch NETNS STASH_DIR -- PROGRAM ARGS...``
(single-threaded, before any other thread exists).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from netsleuth.netns.core import (
    CLONE_NEWNS,
    MS_BIND,
    MS_REC,
    MS_SLAVE,
    _check,
    _libc,
    _mount,
    netns_path,
    setns,
)

__all__ = ["enter_keeping_cgroups", "main"]

MS_MOVE = 8192
MNT_DETACH = 2
CGROUP_ROOT = "/sys/fs/cgroup"


def enter_keeping_cgroups(netns: str, stash: Path) -> None:
    """Enter ``netns`` for the rest of this process; see the module docstring."""
    setns(netns_path(netns))
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount("none", "/", None, MS_REC | MS_SLAVE)
    keep = os.path.ismount(CGROUP_ROOT)
    if keep:
        stash.mkdir(parents=True, exist_ok=True)
        _mount(CGROUP_ROOT, str(stash), None, MS_BIND | MS_REC)
    _check(_libc.umount2(b"/sys", MNT_DETACH), "umount /sys")
    _mount("sysfs", "/sys", "sysfs", 0)
    if keep:
        _mount(str(stash), CGROUP_ROOT, None, MS_MOVE)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print(
            "usage: python -m netsleuth.docker._launch NETNS STASH -- PROGRAM ...", file=sys.stderr
        )
        return 2
    netns, stash, program = argv[0], Path(argv[1]), argv[3:]
    enter_keeping_cgroups(netns, stash)
    os.execv(program[0], program)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
