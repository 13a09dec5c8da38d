"""Names for the namespaces drops died in: ``host`` for ours, the name under
``/run/netns``, and ``container:NAME`` for Docker containers where a daemon
answers (optional: no Docker, no names from it)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from netsleuth.netns import NETNS_RUN_DIR

__all__ = ["namespace_names"]

log = logging.getLogger(__name__)


def _inode(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def namespace_names(
    docker_hosts: Iterable[str] = (), run_dir: Path = NETNS_RUN_DIR
) -> dict[int, str]:
    """nsfs inode → name, for every namespace that has one now."""
    names: dict[int, str] = {}
    own = _inode("/proc/self/ns/net")
    if own is not None:
        names[own] = "host"
    with contextlib.suppress(OSError):
        for entry in sorted(run_dir.iterdir()):
            inode = _inode(entry)
            if inode is not None:
                names.setdefault(inode, entry.name)
    for host in docker_hosts:
        try:
            from netsleuth.docker import connect

            client = connect(host, timeout=3)
            try:
                for container in client.containers.list():
                    pid = int(container.attrs.get("State", {}).get("Pid") or 0)
                    inode = _inode(f"/proc/{pid}/ns/net") if pid else None
                    if inode is not None:
                        names.setdefault(inode, f"container:{container.name}")
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - names from Docker are optional
            log.debug("no container names from %s: %s", host, exc)
    return names
