"""``capture --drops``: record the kernel's drops in the captured namespaces
into a sidecar next to the capture (``lab.pcapng`` → ``lab.drops.jsonl``),
on the packets' clock.

The drop source (:class:`netsleuth.drops.DropSource`: bpftrace, or the
ftrace instance as the fallback) stamps drops with CLOCK_MONOTONIC. The
packets carry wall-clock time, so each drop is written with ``wall_ns`` =
``mono_ns`` + the offset wall − monotonic. The offset is measured when the
recording starts, from the closest of a few back-to-back clock reads. It is
measured again at the end, and the reader warns if the wall clock was
stepped in between. The recorder starts before the capture opens its
sockets, so the drops cover the whole capture. bpftrace compiles its
program for a few seconds first.

The file is JSON lines (see :func:`netsleuth.packets.drops.read_sidecar`):
a ``recording`` line once the tracer is attached, a ``drop`` line per drop
or per-second aggregate, and an ``end`` line. Where no tracer can run, the
file holds one ``unavailable`` line saying what is missing, and the capture
goes on without drops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from netsleuth.drops import Drop, DropSource, DropsUnavailable
from netsleuth.errors import InvalidArgument
from netsleuth.packets.drops import SIDECAR_VERSION

__all__ = ["DropRecorder", "clock_offset_ns", "namespace_inode"]

log = logging.getLogger(__name__)

UNKNOWN = "unknown"


def clock_offset_ns(samples: int = 7) -> int:
    """wall − monotonic, from the tightest of ``samples`` back-to-back reads."""
    best: tuple[int, int] | None = None
    for _ in range(samples):
        a = time.monotonic_ns()
        wall = time.time_ns()
        b = time.monotonic_ns()
        if best is None or b - a < best[0]:
            best = (b - a, wall - (a + b) // 2)
    assert best is not None
    return best[1]


def namespace_inode(path: str | Path | None) -> int | None:
    """The nsfs inode of the namespace at ``path`` (None: this thread's)."""
    try:
        return os.stat(path or "/proc/thread-self/ns/net").st_ino
    except OSError:
        return None


class DropRecorder:
    """Write the drops of the namespaces ``namespaces`` (label → namespace
    path, None for ours) to ``path`` from :meth:`start` to :meth:`stop`.

    :meth:`start` waits until the tracer is attached (or says it cannot
    run); it never raises for a missing mechanism: :attr:`available` is
    False and :attr:`status` says why, in one line."""

    def __init__(
        self,
        path: str | Path,
        namespaces: Mapping[str, str | Path | None],
        *,
        prefer: str = "auto",
        capture: str = "",
    ) -> None:
        self.path = Path(path)
        self.capture = capture
        self.labels: dict[int, str] = {}
        for label, ns in namespaces.items():
            inode = namespace_inode(ns)
            if inode is not None:
                self.labels.setdefault(inode, label)
        self.source = DropSource(self._sink, prefer=prefer, accept=self._accepts)
        self.available = False
        self.status = ""
        self.written = 0
        """Drops written, counting aggregates' counts."""
        self._lock = threading.Lock()
        self._out: IO[str] | None = None
        self._offset = clock_offset_ns()
        self._stopped = False
        self._pending: list[Drop] | None = []  # drops delivered before the header is written

    def _accepts(self, inode: int) -> bool:
        return inode == 0 or inode in self.labels

    def _line(self, row: dict[str, Any]) -> None:
        if self._out is not None:
            self._out.write(json.dumps(row, separators=(",", ":")) + "\n")

    def start(self) -> str:
        """Start the tracer and the file; returns the one-line status."""
        try:
            self._out = self.path.open("w", encoding="utf-8")
        except OSError as exc:
            raise InvalidArgument(f"cannot write {self.path}: {exc.strerror or exc}") from None
        try:
            self.source.start()
        except DropsUnavailable as exc:
            self.status = str(exc)
        except Exception as exc:  # capture goes on without drops; say why
            log.debug("drop source failed", exc_info=True)
            self.status = f"kernel drop reasons unavailable: {exc}"
        else:
            self.available = True
            self.status = self.source.summary
        with self._lock:
            if not self.available:
                self._line(
                    {"kind": "unavailable", "version": SIDECAR_VERSION, "reason": self.status}
                )
                self._out.flush()
                return self.status
            self._line(
                {
                    "kind": "recording",
                    "version": SIDECAR_VERSION,
                    "since_ns": time.time_ns(),
                    "mechanism": self.source.mechanism,
                    "summary": self.status,
                    "wall_offset_ns": self._offset,
                    "capture": self.capture,
                    "namespaces": {label: inode for inode, label in self.labels.items()},
                }
            )
            pending, self._pending = self._pending or [], None
            self._write(pending)
        return self.status

    def _sink(self, drops: list[Drop]) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending.extend(drops)
            else:
                self._write(drops)

    def _write(self, drops: list[Drop]) -> None:
        if self._out is not None and not self._stopped:
            for d in drops:
                row: dict[str, Any] = {"kind": "drop", "wall_ns": d.mono_ns + self._offset}
                row.update(d.to_json())
                row["netns"] = self.labels.get(d.netns, UNKNOWN) if d.netns else UNKNOWN
                self._line(row)
                self.written += d.count
            self._out.flush()

    def stop(self) -> None:
        """Stop the tracer (it delivers its last drops), then end the file."""
        with contextlib.suppress(Exception):
            self.source.stop()
        with self._lock:
            if self._out is None:
                return
            if self.available and not self._stopped:
                self._line(
                    {
                        "kind": "end",
                        "until_ns": time.time_ns(),
                        "drops": self.written,
                        "lost": self.source.lost,
                        "wall_offset_ns": clock_offset_ns(),
                    }
                )
            self._stopped = True
            self._out.close()
            self._out = None

    def __enter__(self) -> DropRecorder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
