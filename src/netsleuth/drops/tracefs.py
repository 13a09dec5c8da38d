"""tracefs, touched only through what netsleuth owns.

- :func:`find_tracefs`: where tracefs is mounted; when it is not mounted at
  all, it is mounted at its standard place ``/sys/kernel/tracing`` (what
  systemd does at boot; mounting shows the kernel's one tracing state, it
  changes none of it) and left there, since other tools may use it from then.
- :class:`Instance`: a private ftrace instance ``instances/netsleuth-PID``
  (its own buffer, event switches and clock): ``skb/kfree_skb`` enabled in it
  with a filter, read from its ``trace_pipe``, removed on the way out.
  Nothing at the top level (``tracing_on``, ``current_tracer``,
  ``set_event``, ``events/*/enable``, ``trace``) is ever written.
- Every run writes its owner (PID and start time), its bpftrace's PID and
  start time, and its instance to ``/run/netsleuth/drops/PID.json``;
  :func:`clean_stale` (called before every start) ends the bpftrace and
  removes the instance of an owner that died (SIGKILL gives no chance to
  clean up), and removes ``netsleuth-PID`` instances whose PID is dead.
- :func:`global_state`: the top-level state, for the tests that check it is
  the same before and after.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from netsleuth.netns.owners import Owner, owner_alive, process_start_time

__all__ = [
    "INSTANCE_PREFIX",
    "STATE_DIR",
    "Instance",
    "RunState",
    "clean_stale",
    "find_tracefs",
    "global_state",
]

INSTANCE_PREFIX = "netsleuth-"
STATE_DIR = Path("/run/netsleuth/drops")
STANDARD = Path("/sys/kernel/tracing")


def mounted_tracefs(mounts: str) -> Path | None:
    """The first tracefs mount point in a ``/proc/mounts`` text (pure)."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "tracefs":
            return Path(fields[1].replace("\\040", " "))
    return None


def find_tracefs(mount: bool = True) -> Path | None:
    """Where tracefs is; mounted at the standard place if it is nowhere and
    ``mount`` (needs root). None when there is none (no tracefs in this
    kernel, or no permission to mount it)."""
    try:
        mounts = Path("/proc/mounts").read_text()
    except OSError:
        mounts = ""
    found = mounted_tracefs(mounts)
    if found is not None:
        return found
    if not mount or os.geteuid() != 0 or not STANDARD.is_dir():
        return None
    try:
        subprocess.run(
            ["mount", "-t", "tracefs", "-o", "nosuid,nodev,noexec", "tracefs", str(STANDARD)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return STANDARD if (STANDARD / "events").is_dir() else None


def global_state(tracefs: Path) -> dict[str, str]:
    """The machine-wide tracing settings a tracer could change, and the
    instances other than ours (for the before/after check)."""
    out: dict[str, str] = {}
    for name in ("tracing_on", "current_tracer", "set_event", "set_ftrace_filter", "trace_clock"):
        try:
            out[name] = (tracefs / name).read_text()
        except OSError as exc:
            out[name] = f"<{exc.strerror}>"
    try:
        instances = sorted(p.name for p in (tracefs / "instances").iterdir())
    except OSError:
        instances = []
    out["instances"] = " ".join(n for n in instances if not n.startswith(INSTANCE_PREFIX))
    with contextlib.suppress(OSError):
        out["kfree_skb.enable"] = (tracefs / "events/skb/kfree_skb/enable").read_text()
        out["kfree_skb.filter"] = (tracefs / "events/skb/kfree_skb/filter").read_text()
    return out


# -- run state ---------------------------------------------------------------------


@dataclass(slots=True)
class RunState:
    """What one run owns, written where the next run finds it."""

    owner: Owner
    bpftrace: Owner | None = None
    instance: str = ""
    path: Path = field(default=Path())

    @classmethod
    def mine(cls, state_dir: Path = STATE_DIR) -> RunState:
        me = Owner.me()
        return cls(me, path=state_dir / f"{me.pid}.json")

    def save(self) -> None:
        data = {
            "owner": {"pid": self.owner.pid, "start_time": self.owner.start_time},
            "bpftrace": None
            if self.bpftrace is None
            else {"pid": self.bpftrace.pid, "start_time": self.bpftrace.start_time},
            "instance": self.instance,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> RunState | None:
        try:
            data = json.loads(path.read_text())
            owner = Owner(int(data["owner"]["pid"]), int(data["owner"]["start_time"]))
            bpf = data.get("bpftrace")
            tracer = None if not bpf else Owner(int(bpf["pid"]), int(bpf["start_time"]))
            return cls(owner, tracer, str(data.get("instance") or ""), path)
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _end_process(proc: Owner) -> None:
    """End a process we started, by PID, if it is still the one we started."""
    if not owner_alive(proc):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while owner_alive(proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    if owner_alive(proc):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


def remove_instance(path: Path) -> bool:
    """Switch the event off in a netsleuth instance and remove it."""
    if not path.name.startswith(INSTANCE_PREFIX) or path.parent.name != "instances":
        raise ValueError(f"{path} is not a netsleuth instance")
    with contextlib.suppress(OSError):
        (path / "events/skb/kfree_skb/enable").write_text("0")
    for _ in range(50):
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY while a dying reader still holds trace_pipe
            time.sleep(0.05)
    return False


def clean_stale(tracefs: Path | None, state_dir: Path = STATE_DIR) -> list[str]:
    """End what runs whose owner died left behind. Returns what was removed."""
    removed: list[str] = []
    if state_dir.is_dir():
        for path in state_dir.glob("*.json"):
            state = RunState.load(path)
            if state is not None and owner_alive(state.owner):
                continue
            if state is not None:
                if state.bpftrace is not None and owner_alive(state.bpftrace):
                    _end_process(state.bpftrace)
                    removed.append(f"bpftrace {state.bpftrace.pid}")
                if state.instance and Path(state.instance).exists():
                    remove_instance(Path(state.instance))
                    removed.append(state.instance)
            path.unlink(missing_ok=True)
    if tracefs is not None:
        with contextlib.suppress(OSError):
            for inst in (tracefs / "instances").glob(f"{INSTANCE_PREFIX}*"):
                pid = inst.name[len(INSTANCE_PREFIX) :].split("-")[0]
                if pid.isdigit() and process_start_time(int(pid)) is None:
                    remove_instance(inst)
                    removed.append(str(inst))
    return removed


# -- the instance ------------------------------------------------------------------


_made = itertools.count()


class Instance:
    """A private ftrace instance with ``skb:kfree_skb`` on and filtered:
    ``netsleuth-PID``, or ``netsleuth-PID-N`` for a further one of the
    same process."""

    def __init__(self, tracefs: Path, name: str | None = None) -> None:
        if name is None:
            n = next(_made)
            name = f"{INSTANCE_PREFIX}{os.getpid()}" + (f"-{n}" if n else "")
        self.path = tracefs / "instances" / name
        self._pipe: int | None = None

    def create(self, filter_expr: str, buffer_kb: int = 4096) -> None:
        """Create it, set its clock to CLOCK_MONOTONIC and its buffer, enable
        the event with ``filter_expr``. Raises OSError (removed again)."""
        self.path.mkdir()
        try:
            (self.path / "trace_clock").write_text("mono")
            (self.path / "buffer_size_kb").write_text(str(buffer_kb))
            event = self.path / "events/skb/kfree_skb"
            if filter_expr:
                (event / "filter").write_text(filter_expr)
            (event / "enable").write_text("1")
        except OSError:
            self.remove()
            raise

    def open_pipe(self) -> int:
        """A non-blocking fd of its ``trace_pipe``."""
        self._pipe = os.open(self.path / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        return self._pipe

    def overruns(self) -> int:
        """Events the ring buffer lost (overwritten or dropped) so far."""
        total = 0
        with contextlib.suppress(OSError):
            for stats in (self.path / "per_cpu").glob("cpu*/stats"):
                for line in stats.read_text().splitlines():
                    name, _, value = line.partition(":")
                    if name.strip() in ("overrun", "dropped events"):
                        with contextlib.suppress(ValueError):
                            total += int(value.strip())
        return total

    def remove(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None
        if self.path.exists():
            remove_instance(self.path)
