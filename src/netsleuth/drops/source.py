"""The drop source: which mechanism, started, read, stopped.

:func:`availability` says what this machine allows, without starting
anything: bpftrace with BTF (namespace, device, headers) is chosen where it
can run, a private ftrace instance (reason and location only) where it
cannot, and nothing — with one line saying what is missing — when there is
no permission, no tracefs, no ``skb:kfree_skb`` or no drop reasons.
:class:`DropSource` runs the chosen one in a reader thread and hands lists of
:class:`~.record.Drop` (single drops and per-second aggregates, see
:mod:`.aggregate`) to a sink; a bpftrace that fails to start falls back to
ftrace and says why. Whatever it started is ended on :meth:`~DropSource.stop`;
what a killed run left is ended at the next start (:func:`.tracefs.clean_stale`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from netsleuth.drops import tracefs
from netsleuth.drops.aggregate import Limiter
from netsleuth.drops.bpf import MapDeltas, bpftrace_script, start_bpftrace, stop_bpftrace
from netsleuth.drops.reasons import TracepointFormat, read_format
from netsleuth.drops.record import Drop, MapCount, Tick, parse_bpftrace_line, parse_ftrace_line
from netsleuth.errors import NetsleuthError
from netsleuth.netns.owners import Owner, process_start_time

__all__ = ["BTF", "Availability", "DropSource", "DropsUnavailable", "availability"]

log = logging.getLogger(__name__)

BTF = Path("/sys/kernel/btf/vmlinux")
MECHANISMS = ("auto", "bpftrace", "ftrace")
_LOST = re.compile(r"Lost (\d+) events")
_START_TIMEOUT_S = 60.0  # bpftrace compiles its program with LLVM: slow on a loaded machine


class DropsUnavailable(NetsleuthError):
    """No drop source can run here; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Availability:
    """What this machine allows: ``mechanism`` (None: nothing), and in one
    line what is missing (for ftrace: what it cannot tell)."""

    mechanism: str | None
    missing: str = ""
    tracefs: Path | None = None
    format: TracepointFormat | None = None
    bpftrace: str | None = None

    @property
    def summary(self) -> str:
        if self.mechanism is None:
            return f"kernel drop reasons unavailable: {self.missing}"
        what = "bpftrace on skb:kfree_skb" if self.mechanism == "bpftrace" else "ftrace instance"
        return f"drops via {what}" + (f" ({self.missing})" if self.missing else "")


def availability(prefer: str = "auto", *, mount: bool = True) -> Availability:
    """Which mechanism can run (nothing is started; tracefs may be mounted)."""
    if prefer not in MECHANISMS:
        raise ValueError(prefer)
    if os.geteuid() != 0:
        return Availability(None, "no permission: tracing drops needs root")
    where = tracefs.find_tracefs(mount=mount)
    if where is None:
        return Availability(None, "no tracefs (mount -t tracefs tracefs /sys/kernel/tracing)")
    try:
        fmt = read_format(where)
    except OSError:
        return Availability(None, "no skb:kfree_skb tracepoint in this kernel", where)
    if not fmt.has_reason:
        return Availability(None, "no drop reasons in this kernel (5.17 or later has them)", where)
    program = shutil.which("bpftrace")
    if prefer != "ftrace":
        lacking = []
        if program is None:
            lacking.append("no bpftrace (Debian package bpftrace)")
        if not BTF.exists():
            lacking.append(f"no BTF ({BTF})")
        if not lacking:
            return Availability("bpftrace", "", where, fmt, program)
        if prefer == "bpftrace":
            return Availability(None, "; ".join(lacking), where, fmt)
        return Availability(
            "ftrace", "; ".join(lacking) + ": namespace, device and headers unknown", where, fmt
        )
    return Availability("ftrace", "namespace, device and headers unknown", where, fmt, program)


class DropSource:
    """Read drops until stopped; ``sink`` gets lists of drops (from the reader
    thread). ``accept`` keeps the drops of the namespaces (nsfs inodes, 0:
    unknown) it returns True for; None keeps all."""

    def __init__(
        self,
        sink: Callable[[list[Drop]], None],
        *,
        prefer: str = "auto",
        accept: Callable[[int], bool] | None = None,
        rate: int = 100,
        total_rate: int = 2000,
        include_noise: bool = False,
        tick: float = 1.0,
    ) -> None:
        self.sink = sink
        self.prefer = prefer
        self.accept = accept
        self.rate = rate
        self.total_rate = total_rate
        self.include_noise = include_noise
        self.tick = tick
        self.available = Availability(None, "not started")
        self.mechanism: str | None = None
        self.missing = ""
        self.limiter = Limiter(rate, total_rate, int(tick * 1e9))
        self.lost = 0
        """Drops the mechanism reported it could not deliver (not in any count)."""
        self.delivered = 0
        """Drops handed to the sink, counting aggregates' counts."""
        self.reader_cpu_s = 0.0
        self.tracer_cpu_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error = ""
        self._proc: subprocess.Popen[str] | None = None
        self._instance: tracefs.Instance | None = None
        self._state: tracefs.RunState | None = None
        self._stderr: deque[str] = deque(maxlen=20)

    # -- life cycle -------------------------------------------------------------
    def start(self) -> None:
        """Start the best mechanism; raises :class:`DropsUnavailable`."""
        avail = availability(self.prefer)
        self.available = avail
        if avail.mechanism is None:
            raise DropsUnavailable(avail.summary)
        tracefs.clean_stale(avail.tracefs)
        self._state = tracefs.RunState.mine()
        self._state.save()
        if avail.mechanism == "bpftrace":
            error = self._start_thread("bpftrace")
            if not error:
                return
            if self._stop.is_set():  # stopped (from another thread) while it started
                self.stop()
                raise DropsUnavailable("drop source stopped before it started")
            if self.prefer == "bpftrace":
                self.stop()
                raise DropsUnavailable(f"bpftrace did not start: {error}")
            self.missing = (
                f"bpftrace did not start ({error}): namespace, device and headers unknown"
            )
            self._stop.clear()
        else:
            self.missing = avail.missing
        error = self._start_thread("ftrace")
        if error:
            self.stop()
            raise DropsUnavailable(f"kernel drop reasons unavailable: {error}")

    def _start_thread(self, mechanism: str) -> str:
        self._ready.clear()
        self._start_error = ""
        target = self._run_bpftrace if mechanism == "bpftrace" else self._run_ftrace
        # A local name: stop() from another thread may clear self._thread meanwhile.
        thread = threading.Thread(target=target, name=f"drops-{mechanism}", daemon=True)
        self._thread = thread
        thread.start()
        self._ready.wait(_START_TIMEOUT_S + 5)
        if not self._ready.is_set():
            self._start_error = f"{mechanism} did not start within {_START_TIMEOUT_S:.0f} s"
        if self._start_error:
            self._stop.set()
            thread.join(timeout=10)
            self._thread = None
            return self._start_error
        self.mechanism = mechanism
        return ""

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        if self._proc is not None:  # the thread did not get to it
            stop_bpftrace(self._proc)
            self._proc = None
        if self._instance is not None:
            self._instance.remove()
            self._instance = None
        if self._state is not None:
            self._state.remove()
            self._state = None

    def __enter__(self) -> DropSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def summary(self) -> str:
        if self.mechanism is None:
            return self.available.summary
        what = "bpftrace on skb:kfree_skb" if self.mechanism == "bpftrace" else "ftrace instance"
        return f"drops via {what}" + (f" ({self.missing})" if self.missing else "")

    # -- delivery ----------------------------------------------------------------
    def _deliver(self, drops: list[Drop]) -> None:
        if self.accept is not None:
            drops = [d for d in drops if self.accept(d.netns)]
        if drops:
            self.delivered += sum(d.count for d in drops)
            self.sink(drops)

    def _pass(self, batch: list[Drop], drop: Drop) -> None:
        passed = self.limiter.offer(drop)
        if passed is not None:
            batch.append(passed)

    # -- bpftrace ------------------------------------------------------------------
    def _run_bpftrace(self) -> None:
        avail = self.available
        assert avail.format is not None and avail.bpftrace is not None
        fmt = avail.format
        excluded = () if self.include_noise else fmt.noise_codes()
        script = bpftrace_script(excluded, self.rate, self.total_rate, int(self.tick * 1000))
        cpu0 = time.thread_time()
        try:
            proc = start_bpftrace(avail.bpftrace, script)
        except OSError as exc:
            self._start_error = str(exc)
            self._ready.set()
            return
        self._proc = proc
        if self._state is not None:
            start = process_start_time(proc.pid)
            if start is not None:
                self._state.bpftrace = Owner(proc.pid, start)
                self._state.save()
        assert proc.stdout is not None and proc.stderr is not None
        err_thread = threading.Thread(
            target=self._read_stderr, args=(proc,), name="drops-stderr", daemon=True
        )
        err_thread.start()
        out = proc.stdout
        deltas = MapDeltas()
        batch: list[Drop] = []
        attached = False
        stopping_since: float | None = None
        try:
            while True:
                if self._stop.is_set() and stopping_since is None:
                    stopping_since = time.monotonic()
                    if attached:
                        with contextlib.suppress(ProcessLookupError):
                            proc.send_signal(2)  # SIGINT: END prints the maps one last time
                    else:
                        proc.kill()
                if stopping_since is not None and time.monotonic() - stopping_since > 5:
                    proc.kill()
                    break
                ready, _, _ = select.select([out], [], [], 0.2)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                line = out.readline()
                if not line:
                    break
                if not attached:
                    if line.startswith("Attaching"):
                        attached = True
                        self._ready.set()
                    continue
                item = parse_bpftrace_line(line, fmt)
                if isinstance(item, Drop):
                    self._pass(batch, item)
                elif isinstance(item, MapCount):
                    rise = deltas.update(item.key, item.total)
                    if rise:
                        self.limiter.seen += rise
                        self.limiter.aggregated += rise
                        reason, location, netns, ifname = item.key
                        batch.append(Drop(0, reason, location, netns, ifname, count=rise))
                elif isinstance(item, Tick):
                    self.reader_cpu_s = time.thread_time() - cpu0
                    cpu = process_cpu_s(proc.pid)
                    if cpu is not None:
                        self.tracer_cpu_s = cpu
                    stamped = [d if d.mono_ns else _stamp(d, item.mono_ns) for d in batch]
                    self._deliver(stamped + self.limiter.flush(item.mono_ns))
                    batch = []
                    if item.final:
                        break
                else:
                    lost = _LOST.search(line)
                    if lost:
                        self.lost += int(lost.group(1))
        finally:
            if batch:
                now = time.monotonic_ns()
                self._deliver([d if d.mono_ns else _stamp(d, now) for d in batch])
            self._deliver(self.limiter.flush())
            if not attached:
                self._start_error = self._bpftrace_error(proc)
            stop_bpftrace(proc)
            err_thread.join(timeout=2)
            self._proc = None
            self.reader_cpu_s = time.thread_time() - cpu0
            self._ready.set()

    def _read_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.strip()
            if not line or "RLIMIT_MEMLOCK" in line:
                continue
            lost = _LOST.search(line)
            if lost:
                self.lost += int(lost.group(1))
                continue
            self._stderr.append(line)

    def _bpftrace_error(self, proc: subprocess.Popen[str]) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        time.sleep(0.1)
        lines = [ln for ln in self._stderr if ln.startswith("ERROR") or "rror" in ln]
        text = (lines or list(self._stderr) or [f"exit status {proc.returncode}"])[-1]
        return text[:200]

    # -- ftrace ----------------------------------------------------------------------
    def _run_ftrace(self) -> None:
        avail = self.available
        assert avail.format is not None and avail.tracefs is not None
        excluded = () if self.include_noise else sorted(avail.format.noise_codes())
        expr = " && ".join(f"reason != {code}" for code in excluded)
        cpu0 = time.thread_time()
        inst = tracefs.Instance(avail.tracefs)
        try:
            inst.create(expr)
            if self._state is not None:
                self._state.instance = str(inst.path)
                self._state.save()
            self._instance = inst
            fd = inst.open_pipe()
        except OSError as exc:
            inst.remove()
            self._instance = None
            self._start_error = f"ftrace instance {inst.path}: {exc.strerror or exc}"
            self._ready.set()
            return
        self._ready.set()
        pending = b""
        next_tick = time.monotonic() + self.tick
        overrun0 = inst.overruns()
        batch: list[Drop] = []
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], min(0.2, self.tick))
                if ready:
                    try:
                        chunk = os.read(fd, 1 << 20)
                    except BlockingIOError:
                        chunk = b""
                    if chunk:
                        pending += chunk
                        *lines, pending = pending.split(b"\n")
                        for raw in lines:
                            drop = parse_ftrace_line(raw.decode("utf-8", "replace"))  # fast path
                            if drop is not None:
                                self._pass(batch, drop)
                    else:
                        time.sleep(0.05)
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self.tick
                    self._deliver(batch + self.limiter.flush(time.monotonic_ns()))
                    batch = []
                    self.lost = inst.overruns() - overrun0
                    self.reader_cpu_s = time.thread_time() - cpu0
        finally:
            self._deliver(batch + self.limiter.flush())
            self.reader_cpu_s = time.thread_time() - cpu0


def _stamp(drop: Drop, mono_ns: int) -> Drop:
    return replace(drop, mono_ns=mono_ns)


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
