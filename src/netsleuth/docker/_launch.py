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

from netsleuth.netns import enter_for_good, netns_path

__all__ = ["enter_keeping_cgroups", "main"]


def enter_keeping_cgroups(netns: str, stash: Path) -> None:
    """Enter ``netns`` for the rest of this process; see the module docstring."""
    enter_for_good(netns_path(netns), cgroup_stash=stash)


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
