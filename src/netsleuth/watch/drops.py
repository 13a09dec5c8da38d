"""The drop source of ``watch``: kernel drops in the watched namespaces, as
``drop`` events.

The namespaces watched are the host's and every target's, known by their
nsfs inode and labelled like the other events (``host``, the target's
label; the first label of a namespace wins, as for counters). A drop in
any other namespace is not recorded. The ftrace fallback cannot tell the
namespace: its drops are recorded under :data:`UNKNOWN`.

Starting it never holds up the probes: bpftrace compiles its program for a
second or more, so it starts in its own thread, and a ``note`` event says
from when drops are recorded, and by which mechanism — or, in one line,
what is missing where none can run (watch goes on without them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from netsleuth.drops import Drop, DropSource, DropsUnavailable
from netsleuth.model import DropDetail, EventKind, NetEvent, NoteDetail

__all__ = ["UNKNOWN", "DropWatch", "drop_event"]

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
"""The ``netns`` of a drop whose namespace the mechanism cannot tell."""


def drop_event(drop: Drop, label: str, wall_offset_ns: int) -> NetEvent:
    """The ``drop`` event of one drop (or aggregate), in namespace ``label``."""
    return NetEvent(
        drop.mono_ns + wall_offset_ns,
        drop.mono_ns,
        label,
        EventKind.DROP,
        drop.ifname,
        drop.reason,
        DropDetail(
            reason=drop.reason,
            location=drop.location,
            netns_inode=drop.netns,
            device=drop.ifname,
            proto=drop.proto,
            saddr=drop.saddr,
            daddr=drop.daddr,
            sport=drop.sport,
            dport=drop.dport,
            count=drop.count,
        ),
    )


class DropWatch:
    def __init__(self, emit: Callable[[list[NetEvent]], None], *, prefer: str = "auto") -> None:
        self._emit = emit
        self._labels: dict[int, str] = {}
        self._lock = threading.Lock()
        self.source = DropSource(self._on_drops, prefer=prefer, accept=self._accepts)
        self.status = ""
        """One line: the mechanism in use, or what is missing."""
        self.available: bool | None = None
        self._thread = threading.Thread(target=self._start, name="drops-start", daemon=True)
        self._stopping = threading.Event()
        self._wall_offset = time.time_ns() - time.monotonic_ns()

    # -- namespaces ------------------------------------------------------------------
    def watch(self, label: str, path: str | Path | None) -> None:
        """Record drops in the namespace at ``path`` (None: ours) as ``label``."""
        try:
            inode = os.stat(path or "/proc/thread-self/ns/net").st_ino
        except OSError:
            return  # gone already: the target watcher says so
        with self._lock:
            self._labels.setdefault(inode, label)

    def forget(self, label: str) -> None:
        with self._lock:
            for inode in [i for i, name in self._labels.items() if name == label]:
                del self._labels[inode]

    def _accepts(self, inode: int) -> bool:
        return inode == 0 or inode in self._labels

    # -- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def _start(self) -> None:
        wall = time.time_ns()
        mono = time.monotonic_ns()
        try:
            self.source.start()
        except DropsUnavailable as exc:
            self.available, self.status = False, str(exc)
            if self._stopping.is_set():
                return  # stopped before it ran: nothing to say
        except Exception as exc:  # watch goes on without drops; say why
            log.debug("drop source failed", exc_info=True)
            self.available, self.status = False, f"kernel drop reasons unavailable: {exc}"
        else:
            self.available, self.status = True, self.source.summary
            wall, mono = time.time_ns(), time.monotonic_ns()
        if self._stopping.is_set() and self.available:
            self.source.stop()
            return
        self._emit(
            [NetEvent(wall, mono, "host", EventKind.NOTE, "", "drops", NoteDetail(self.status))]
        )

    def stop(self) -> None:
        """Stop it, also while it is still starting (a short run must not
        wait for bpftrace to finish compiling)."""
        self._stopping.set()
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.source.stop()  # ends a bpftrace still compiling
            self._thread.join(timeout=90)
        with contextlib.suppress(Exception):
            self.source.stop()

    # -- delivery ------------------------------------------------------------------------
    def _on_drops(self, drops: list[Drop]) -> None:
        with self._lock:
            labels = dict(self._labels)
        events = [
            drop_event(d, labels.get(d.netns, UNKNOWN) if d.netns else UNKNOWN, self._wall_offset)
            for d in drops
        ]
        if events:
            self._emit(events)
