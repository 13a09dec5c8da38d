"""The watch engine: targets, probe workers, event sources and the store,
wired together. ``netsleuth watch`` and the lab both drive this one engine.

Threads and processes it owns (and joins on the way out): one probe worker
process per target, one netlink monitor thread per namespace (the host's and
each target's), an ``nft monitor`` for the host namespace, optional Docker
event sources, and the store writer. The calling thread runs :meth:`run`:
it receives result batches, watches targets come and go, and ticks the view.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

from netsleuth import netns
from netsleuth.errors import InvalidArgument, NetsleuthError, TargetNotFound
from netsleuth.events import GatewayInvariant, NetlinkMonitor, NftMonitor, wall_mono
from netsleuth.model import EventKind, NetEvent, Outcome, ProbeResult
from netsleuth.probes import WorkerConfig, parse_probe, spawn_worker
from netsleuth.store import Store, StoreWriter
from netsleuth.watch.live import LiveStats
from netsleuth.watch.targets import Location, Target, parse_target

__all__ = ["Observer", "WatchConfig", "WatchEngine", "WatchSummary"]

_OUTCOMES = tuple(Outcome)


class Observer(Protocol):
    """Anything that wants results and events as they arrive (metrics)."""

    def observe_batch(self, results: Sequence[ProbeResult]) -> None: ...
    def observe_event(self, event: NetEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class WatchConfig:
    targets: tuple[str, ...]
    probes: tuple[str, ...]
    rate: float = 10.0
    timeout: float = 1.0
    jitter: float = 0.1
    duration: float | None = None
    count: int | None = None
    docker_hosts: tuple[str, ...] = ()
    host_netns: str | None = None  # the namespace playing "host" (the lab's), None: ours
    label: str = "watch"
    args: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.targets:
            raise InvalidArgument(
                "give at least one --target (host, netns:NAME, pid:PID, container:NAME)"
            )
        if not self.probes:
            raise InvalidArgument("give at least one --probe, e.g. dns:SERVER/NAME or resolve:NAME")
        if not 0 < self.rate <= 100_000:
            raise InvalidArgument(f"--rate {self.rate}: must be in (0, 100000] per second")
        if not 0 < self.timeout <= 60:
            raise InvalidArgument(f"--timeout {self.timeout}: must be in (0, 60] seconds")
        for spec in self.probes:
            parse_probe(spec)


@dataclass(frozen=True, slots=True)
class WatchSummary:
    run_id: int
    store: Path
    seconds: float
    attempts: int
    failed: int
    events: dict[str, int]
    worker_stats: dict[str, dict[str, Any]]
    stats: LiveStats


class _TargetRunner:
    """One target: its worker, its namespace monitor, its invariant."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.label = target.label
        self.location: Location | None = None
        self.process: Any = None
        self.conn: Connection | None = None
        self.monitor: NetlinkMonitor | None = None
        self.invariant: GatewayInvariant | None = None
        self.probes: list[tuple[str, str]] = []
        self.worker_stats: dict[str, Any] = {}
        self.done = False
        self.gone_since: float | None = None
        self.gone_emitted = 0
        self.error = ""


class WatchEngine:
    def __init__(
        self,
        config: WatchConfig,
        store_path: str | Path,
        *,
        observers: Sequence[Observer] = (),
    ) -> None:
        config.validate()
        self.config = config
        self.store_path = Path(store_path)
        self.observers = list(observers)
        self.stats = LiveStats()
        self.stop_event = threading.Event()
        self._lock = threading.RLock()
        self._writer: StoreWriter | None = None
        self._host: NetlinkMonitor | None = None
        self._nft: NftMonitor | None = None
        self._anchor: netns.SysfsAnchor | None = None
        self._docker: list[Any] = []
        self._runners = [
            _TargetRunner(
                parse_target(
                    t, config.docker_hosts[0] if config.docker_hosts else None, config.host_netns
                )
            )
            for t in config.targets
        ]
        labels = [r.label for r in self._runners]
        if len(set(labels)) != len(labels):
            raise InvalidArgument("the same --target is given twice")
        self.run_id = 0

    # -- events -----------------------------------------------------------------
    def _emit(self, events: list[NetEvent]) -> None:
        """Sink of every event source (called from their threads)."""
        with self._lock:
            for runner in self._runners:
                if runner.invariant is not None:
                    flip = runner.invariant.check()
                    if flip is not None:
                        events.append(flip)
            writer = self._writer
            for event in events:
                if writer is not None:
                    writer.put_event(event)
                self.stats.add_event_line(
                    str(event.kind), f"{event.netns} {event.kind} {event.ifname} {event.subject}"
                )
                for obs in self.observers:
                    obs.observe_event(event)

    def _note(self, netns_label: str, kind: EventKind, subject: str = "", **detail: Any) -> None:
        wall, mono = wall_mono()
        self._emit([NetEvent(wall, mono, netns_label, kind, "", subject, detail)])

    # -- facts --------------------------------------------------------------------
    def _record_bridge_facts(self, store: Store, when: str) -> None:
        host = self._host
        if host is None:
            return
        with self._lock:
            links = dict(host.state.links)
        for link in links.values():
            if link.kind != "bridge":
                continue
            aat = host.addr_assign_type(link.name)
            arp_notify = self._arp_notify(link.name)
            ports = sorted(p.name for p in links.values() if p.master == link.index)
            store.add_fact(
                self.run_id,
                "host",
                "bridge",
                link.name,
                {
                    "when": when,
                    "mac": link.mac,
                    "addr_assign_type": aat,
                    "pinned": aat == 3,
                    "ports": ports,
                    "arp_notify": arp_notify,
                },
            )
            for obs in self.observers:
                set_bridge = getattr(obs, "set_bridge", None)
                if set_bridge is not None:
                    set_bridge(link.name, aat == 3)

    def _arp_notify(self, bridge: str) -> int | None:
        key = f"net/ipv4/conf/{bridge}/arp_notify"
        try:
            if self.config.host_netns is None:
                return int(Path("/proc/sys", key).read_text())
            return int(netns.sysctl_get(netns.netns_path(self.config.host_netns), key))
        except (OSError, ValueError):
            return None

    # -- targets --------------------------------------------------------------------
    def _start_target(self, runner: _TargetRunner, loc: Location) -> None:
        cfg = self.config
        runner.location = loc
        worker_cfg = WorkerConfig(
            target=runner.label,
            netns_path=loc.path,
            netns_name=loc.netns_name,
            probes=cfg.probes,
            rate=cfg.rate,
            timeout=cfg.timeout,
            jitter=cfg.jitter,
            count=cfg.count,
        )
        proc, parent = spawn_worker(worker_cfg)
        runner.process, runner.conn, runner.done = proc, parent, False
        if runner.target.kind != "host":
            monitor = NetlinkMonitor(
                runner.label, loc.path, self._emit, sysfs_root=lambda: loc.sysfs, lock=self._lock
            )
            # Inside a target only the gateway's neighbour entry matters.
            monitor.state.record_neigh_for = lambda ip: ip == monitor.state.gateway
            runner.monitor = monitor
            if self._host is not None:
                runner.invariant = GatewayInvariant(runner.label, self._host.state, monitor.state)
            monitor.start()

    def _stop_worker(self, runner: _TargetRunner, wait_s: float) -> None:
        if runner.conn is not None and runner.process is not None:
            with contextlib.suppress(OSError):
                runner.conn.send("stop")
            end = time.monotonic() + wait_s
            while not runner.done and time.monotonic() < end:
                if runner.conn.poll(0.05):
                    self._receive(runner)
                elif runner.process.poll() is not None:
                    break
            try:
                runner.process.wait(1)
            except subprocess.TimeoutExpired:
                runner.process.kill()
                runner.process.wait()
            runner.conn.close()
        runner.conn = runner.process = None
        if runner.monitor is not None:
            runner.monitor.stop()
            runner.monitor = None
        runner.invariant = None

    def _receive(self, runner: _TargetRunner) -> None:
        assert runner.conn is not None
        try:
            kind, payload = runner.conn.recv()
        except (EOFError, OSError):
            if not runner.done:
                code = runner.process.wait() if runner.process is not None else None
                runner.error = f"probe worker exited unexpectedly (exit status {code})"
            runner.done = True
            return
        if kind == "results":
            probes = runner.probes
            label = runner.label
            outcomes = _OUTCOMES
            results = [
                ProbeResult(
                    wall,
                    mono,
                    label,
                    probes[i][0],
                    probes[i][1],
                    outcomes[o],
                    lat if lat >= 0 else None,
                    ans,
                )
                for i, wall, mono, o, lat, ans in payload
            ]
            self._deliver(results)
        elif kind == "ready":
            runner.probes = [(str(text), str(server)) for text, server in payload]
        elif kind == "done":
            runner.worker_stats = payload
            runner.done = True
        elif kind == "error":
            runner.error = str(payload)
            runner.done = True

    def _deliver(self, results: list[ProbeResult]) -> None:
        if self._writer is not None:
            self._writer.put_probes(results)
        self.stats.add_results(results)
        for obs in self.observers:
            obs.observe_batch(results)

    def _check_presence(self, runner: _TargetRunner, now: float) -> None:
        current = runner.location
        if current is not None and current.path is not None and _same_namespace(current):
            return  # still there: no need to ask anyone (e.g. the Docker API) again
        loc = runner.target.locate()
        if current is not None and (loc is None or loc.identity != current.identity):
            self._stop_worker(runner, 0.0)
            runner.location = None
            runner.gone_since, runner.gone_emitted = now, 0
            self._note(
                runner.label,
                EventKind.TARGET_GONE,
                runner.target.ref,
                reason="namespace removed" if loc is None else "namespace re-created",
            )
        if runner.location is None and loc is not None and not runner.done:
            self._note(runner.label, EventKind.TARGET_BACK, runner.target.ref)
            runner.gone_since = None
            self._start_target(runner, loc)

    def _emit_gone(self, runner: _TargetRunner, now: float) -> None:
        """While a target is gone its probes are recorded as target-gone, on schedule."""
        if runner.gone_since is None or not runner.probes:
            return
        due = math.floor((now - runner.gone_since) * self.config.rate)
        if due <= runner.gone_emitted:
            return
        wall, mono = wall_mono()
        step = int(1e9 / self.config.rate)
        results = []
        for k in range(runner.gone_emitted, due):
            offset = (due - 1 - k) * step
            for text, server in runner.probes:
                results.append(
                    ProbeResult(
                        wall - offset,
                        mono - offset,
                        runner.label,
                        text,
                        server,
                        Outcome.TARGET_GONE,
                    )
                )
        runner.gone_emitted = due
        self._deliver(results)

    # -- the run --------------------------------------------------------------------
    def run(
        self, on_tick: Callable[[LiveStats, float], None] | None = None, tick_interval: float = 0.5
    ) -> WatchSummary:
        cfg = self.config
        store = Store(self.store_path, create=True)
        started = time.monotonic()
        try:
            self.run_id = store.begin_run(
                cfg.label,
                [r.label for r in self._runners],
                {
                    **cfg.args,
                    "probes": list(cfg.probes),
                    "rate": cfg.rate,
                    "timeout": cfg.timeout,
                    "host_netns": cfg.host_netns,
                },
            )
            self._writer = StoreWriter(self.store_path, self.run_id)
            self._start_sources()
            self._record_bridge_facts(store, "start")
            for runner in self._runners:
                loc = runner.target.locate()
                if loc is None:
                    raise TargetNotFound(_not_found_hint(runner.target))
                self._start_target(runner, loc)
            self._loop(started, on_tick, tick_interval)
        finally:
            for runner in self._runners:
                self._stop_worker(runner, cfg.timeout + 1.0)
            self._record_bridge_facts(store, "end")
            self._stop_sources()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self.run_id:
                store.end_run(self.run_id)
            store.close()
        errors = [f"{r.label}: {r.error}" for r in self._runners if r.error]
        if errors and self.stats.attempts == 0:
            raise NetsleuthError("; ".join(errors))
        return WatchSummary(
            run_id=self.run_id,
            store=self.store_path,
            seconds=time.monotonic() - started,
            attempts=self.stats.attempts,
            failed=self.stats.failed,
            events=dict(self.stats.events),
            worker_stats={r.label: r.worker_stats for r in self._runners},
            stats=self.stats,
        )

    def _loop(
        self,
        started: float,
        on_tick: Callable[[LiveStats, float], None] | None,
        tick_interval: float,
    ) -> None:
        cfg = self.config
        deadline = started + cfg.duration if cfg.duration else math.inf
        next_tick = next_presence = time.monotonic()
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            conns = {r.conn: r for r in self._runners if r.conn is not None and not r.done}
            if not conns and all(r.done for r in self._runners):
                break  # --count reached everywhere
            if conns:
                for conn in wait(list(conns), timeout=0.05):
                    self._receive(conns[conn])  # type: ignore[index]
            else:
                time.sleep(0.05)
            now = time.monotonic()
            if now >= next_presence:
                for runner in self._runners:
                    self._check_presence(runner, now)
                    self._emit_gone(runner, now)
                next_presence = now + 0.1
            if on_tick is not None and now >= next_tick:
                on_tick(self.stats, now - started)
                next_tick = now + tick_interval
        if on_tick is not None:
            on_tick(self.stats, time.monotonic() - started)

    def _start_sources(self) -> None:
        cfg = self.config
        host_path = None if cfg.host_netns is None else netns.netns_path(cfg.host_netns)
        if cfg.host_netns is not None:
            if not netns.exists(cfg.host_netns):
                raise TargetNotFound(f"host namespace {cfg.host_netns} does not exist")
            self._anchor = netns.SysfsAnchor(cfg.host_netns)
            self._anchor.ready()
        anchor = self._anchor
        self._host = NetlinkMonitor(
            "host",
            host_path,
            self._emit,
            fdb=True,
            neigh_filter=lambda ip: False,
            sysfs_root=lambda: anchor.root if anchor else Path("/sys"),
            lock=self._lock,
        ).start()
        self._nft = NftMonitor("host", cfg.host_netns, self._emit).start()
        if cfg.docker_hosts:
            from netsleuth.docker import DockerEventSource

            source = DockerEventSource(cfg.docker_hosts, lambda e: self._emit([e]))
            source.start()
            self._docker = [source]

    def _stop_sources(self) -> None:
        for source in self._docker:
            source.stop()
        if self._nft is not None:
            self._nft.stop()
        if self._host is not None:
            self._host.stop()
        if self._anchor is not None:
            self._anchor.close()


def _same_namespace(loc: Location) -> bool:
    """Does ``loc.path`` still lead to the namespace it led to before?"""
    assert loc.path is not None
    try:
        st = os.stat(loc.path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == loc.identity


def _not_found_hint(target: Target) -> str:
    if target.kind == "netns":
        return f"network namespace {target.ref} does not exist (see `ip netns list`)"
    if target.kind == "pid":
        return f"process {target.ref} does not exist"
    if target.kind == "container":
        return (
            f"container {target.ref} is not running on "
            f"{target.docker_host or 'the default Docker socket'}"
        )
    return "the host namespace is not available"
