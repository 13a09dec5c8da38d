"""Sample every watched namespace's kernel counters once a second.

One thread; each namespace gets a :class:`~netsleuth.netns.counters.CounterReader`
(opened in that namespace once) and a :class:`~netsleuth.events.counters.CounterDiff`.
A sample that changed becomes a ``counters`` event through the engine's sink.
A namespace that cannot be read any more (it went away) is dropped until it
is watched again. Namespaces are keyed by identity, so a target probing from
the host namespace does not read it twice.

Beside the counters, each namespace with conntrack gets an
:class:`~netsleuth.netns.unnated.UnnatedReader`: the number of conntrack
entries that escaped NAT (:data:`UNNATED`) is written as a level whenever it
changed, back to 0 included, so the analysis knows when such entries were
present (:mod:`netsleuth.analysis.unnated`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from netsleuth.events import wall_mono
from netsleuth.events.counters import CounterDiff
from netsleuth.lifecycle import StartStop
from netsleuth.model import CounterSample, EventKind, NetEvent
from netsleuth.netns import Namespace
from netsleuth.netns.counters import CounterReader
from netsleuth.netns.unnated import UnnatedReader

__all__ = ["UNNATED", "CounterSampler", "with_level"]

UNNATED = "ct.unnated_unreplied"
"""The level: unanswered conntrack entries from a NATed bridge subnet that were not NATed."""

UNNATED_BUDGET_S = 0.05
"""CPU a read of those entries may take per sample: one that took k times as
long is followed by k samples without it (a huge table is read less often)."""

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Watched:
    label: str
    namespace: Namespace
    load_links: frozenset[str]
    reader: CounterReader | None = None
    diff: CounterDiff | None = None
    last_mono: float = 0.0
    unnated: UnnatedReader | None = None
    unnated_tried: bool = False
    unnated_last: int | None = None
    unnated_skip: int = 0

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.unnated is not None:
            self.unnated.close()
            self.unnated = None


def with_level(sample: CounterSample | None, seconds: float, key: str, value: int) -> CounterSample:
    """``sample`` (or an empty one) with the level ``key`` set to ``value``."""
    if sample is None:
        return CounterSample(seconds, {}, {key: value})
    return replace(sample, levels={**sample.levels, key: value})


class CounterSampler(StartStop):
    def __init__(self, emit: Callable[[list[NetEvent]], None], interval: float = 1.0) -> None:
        self._emit = emit
        self.interval = interval
        self._lock = threading.Lock()
        self._watched: dict[int, _Watched] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counters", daemon=True)
        self.samples = 0
        self.busy_s = 0.0
        """Thread CPU time spent sampling (for the benchmark and the summary)."""

    def watch(self, label: str, path: str | None, load_links: Iterable[str] = ()) -> None:
        """Sample the namespace at ``path`` (None: ours) as ``label``; a
        namespace already sampled under another label keeps its first one."""
        ns = Namespace(None if path is None else Path(path), None, label)
        try:
            key = ns.inode()
        except Exception:  # noqa: BLE001 - gone already: the target watcher reports that
            return
        with self._lock:
            old = self._watched.get(key)
            if old is not None and old.label != label:
                return
            if old is not None:
                old.close()
            self._watched[key] = _Watched(label, ns, frozenset(load_links))

    def forget(self, label: str) -> None:
        with self._lock:
            for key, w in list(self._watched.items()):
                if w.label == label:
                    w.close()
                    del self._watched[key]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            for w in self._watched.values():
                w.close()
            self._watched.clear()

    def sample_once(self) -> list[NetEvent]:
        """Read every namespace once; the events of what changed."""
        cpu0 = time.thread_time()
        with self._lock:
            watched = list(self._watched.items())
        events = []
        for key, w in watched:
            try:
                if w.reader is None:
                    w.reader, w.diff = CounterReader(w.namespace, w.load_links), CounterDiff()
                values = w.reader.read()
                unnated = self._unnated(w, "ct.count" in values)
            except Exception as exc:  # noqa: BLE001 - a namespace that went away mid-read
                log.debug("counters of %s not read: %s", w.label, exc)
                with self._lock:
                    if self._watched.get(key) is w:
                        w.close()
                        del self._watched[key]
                continue
            wall, mono = wall_mono()
            seconds = (mono - w.last_mono) / 1e9 if w.last_mono else 0.0
            w.last_mono = mono
            assert w.diff is not None
            sample = w.diff.update(values, seconds)
            if unnated is not None and unnated != w.unnated_last:
                # the first reading is written only when there is something to say
                if w.unnated_last is not None or unnated:
                    sample = with_level(sample, seconds, UNNATED, unnated)
                w.unnated_last = unnated
            if sample is not None:
                events.append(NetEvent(wall, mono, w.label, EventKind.COUNTERS, "", "", sample))
        self.samples += 1
        self.busy_s += time.thread_time() - cpu0
        return events

    @staticmethod
    def _unnated(w: _Watched, conntrack: bool) -> int | None:
        """The un-NATed entries of ``w`` now; None where conntrack cannot be
        read (not loaded there, no ctnetlink: tried once)."""
        if w.unnated is None:
            if w.unnated_tried or not conntrack:
                return None
            w.unnated_tried = True
            try:
                w.unnated = w.namespace.run(UnnatedReader)
            except OSError as exc:
                log.debug("conntrack entries of %s not read: %s", w.label, exc)
                return None
        if w.unnated_skip > 0:
            w.unnated_skip -= 1
            return None
        cpu0 = time.thread_time()
        try:
            value = w.unnated.read()
        except OSError as exc:  # a refusal of this dump only: try again next time
            log.debug("conntrack entries of %s not read: %s", w.label, exc)
            return None
        w.unnated_skip = int((time.thread_time() - cpu0) / UNNATED_BUDGET_S)
        return value

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            events = self.sample_once()
            if events:
                self._emit(events)
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a stalled read): skip, do not burst
                next_at, delay = time.monotonic(), 0.0
            self._stop.wait(delay)
