"""Who owns a lab object: a PID plus that process's start time, so a reused
PID is never mistaken for the owner."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Owner", "clean_stale", "owner_alive", "process_start_time"]


def process_start_time(pid: int, proc: Path = Path("/proc")) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone
    (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    start_time: int

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        start = process_start_time(pid)
        assert start is not None
        return cls(pid, start)

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "start_time": self.start_time})

    @classmethod
    def from_file(cls, path: Path) -> Owner | None:
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["start_time"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def owner_alive(owner: Owner | None, proc: Path = Path("/proc")) -> bool:
    return owner is not None and process_start_time(owner.pid, proc) == owner.start_time


def clean_stale(prefix: str) -> list[str]:
    """Remove every namespace (and its /etc/netns files) named ``prefix*`` whose
    owner is dead or unknown. Returns the names removed."""
    from netsleuth.netns.core import OWNERS_DIR, list_named, netns_path, pids_in, remove_owned

    removed = []
    for name in list_named(prefix):
        if not owner_alive(Owner.from_file(OWNERS_DIR / name)):
            # Whatever still runs inside a dead owner's namespace was started by it
            # (dnsmasq, monitors): end it, by PID, before the namespace goes.
            for pid in pids_in(netns_path(name)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            remove_owned(name)
            removed.append(name)
    # Owner files whose namespace is already gone.
    if OWNERS_DIR.is_dir():
        for path in OWNERS_DIR.glob(f"{prefix}*"):
            if not owner_alive(Owner.from_file(path)):
                path.unlink(missing_ok=True)
    return removed
