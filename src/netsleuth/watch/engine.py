"""The watch engine: targets, probe workers, event sources and the store,
wired together. ``netsleuth watch`` and the lab both drive this one engine.

Threads and processes it owns (and joins on the way out): one probe worker
process per target, one netlink monitor thread per namespace (the host's and
each target's), an ``nft monitor`` for the host namespace, optional Docker
event sources, and the store writer. The calling thread runs :meth:`run`:
it receives result batches, watches targets come and go, and ticks the view.

The topology is found, not asked for (:mod:`netsleuth.watch.paths`): the
namespace holding the targets' bridges plays "host" (its bridges, NAT,
firewall and link events are recorded) unless ``host_netns`` overrides it,
and a control target probing from it is added when none of the user's
targets is there. After every event batch each followed target's path states
are checked; their beginnings and ends are stored as ``state-entered`` /
``state-left`` events, and gateways at risk are shown.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
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
from netsleuth.model import (
    Bridge,
    CounterSample,
    EndDetail,
    EventDetail,
    EventKind,
    NetEvent,
    NoteDetail,
    Outcome,
    ProbeResult,
    TargetDetail,
)
from netsleuth.netns.counters import LOAD_COUNTERS
from netsleuth.passive.source import PassiveSource
from netsleuth.probes import (
    Done,
    Failed,
    ProbeSlot,
    Ready,
    Results,
    Stop,
    WorkerConfig,
    WorkerStats,
    parse_probe,
    parse_resolv_conf,
    spawn_worker,
)
from netsleuth.store import Store, StoreWriter
from netsleuth.watch.containers import (
    FACT_KIND,
    ContainerFleet,
    ContainerInfo,
    Ended,
    FleetChange,
    Lost,
    Started,
    container_fact,
    parse_container_filters,
    settle_held,
    split_held,
    target_label,
)
from netsleuth.watch.counters import CounterSampler
from netsleuth.watch.drops import DropWatch
from netsleuth.watch.live import LiveStats
from netsleuth.watch.paths import (
    Discovery,
    PathWatch,
    choose_host,
    discover,
    egress_links,
    read_firewall,
)
from netsleuth.watch.targets import DEFAULT_DOCKER_HOST, Location, Target, parse_target

__all__ = ["Observer", "WatchConfig", "WatchEngine", "WatchSummary"]


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
    host_netns: str | None = None  # the namespace playing "host"; None: found from the targets
    control: bool = True  # add a control target where the bridges are, if none is given
    counters: float = 1.0  # seconds between kernel counter samples; 0: none
    drops: bool = True  # kernel drop reasons (netsleuth.drops) where the kernel allows
    label: str = "watch"
    args: dict[str, Any] = field(default_factory=dict)
    containers: tuple[str, ...] | None = None  # --containers filters; None: off, (): every one
    passive: tuple[str, ...] | None = None  # --passive interfaces; None: off, (): found
    retain_ns: int | None = None  # --retain: raw attempts kept this long, then minutes
    max_store_bytes: int | None = None  # --max-store-size: database + log never above

    def validate(self) -> None:
        if self.containers is not None:
            parse_container_filters(self.containers)
        if self.passive is not None and not self.probes and self.targets:
            raise InvalidArgument(
                "the targets have nothing to probe: give --probe, or leave out --target "
                "(--passive alone watches the bridges of the host namespace)"
            )
        if not self.targets and self.containers is None and self.passive is None:
            raise InvalidArgument(
                "give at least one --target (host, netns:NAME, pid:PID, container:NAME)"
            )
        if not self.probes and self.passive is None:
            raise InvalidArgument("give at least one --probe, e.g. dns:SERVER/NAME or resolve:NAME")
        if not 0 < self.rate <= 100_000:
            raise InvalidArgument(f"--rate {self.rate}: must be in (0, 100000] per second")
        if self.counters and not 0.1 <= self.counters <= 3600:
            raise InvalidArgument(f"--counters {self.counters}: use 0 (off) or 0.1 to 3600 s")
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
    host_netns: str | None = None  # the namespace that played "host" (None: ours)
    control: str | None = None  # the control target's label
    containers: int = 0  # container lives watched (--containers)
    containers_ended: int = 0  # of which ended during the watch


class _TargetRunner:
    """One target: its worker, its namespace monitor, its invariant. A target
    of the fleet (``--containers``) also has its current container, which
    life of the series that is, where that life is (``running``, ``exited``:
    its init is gone, ``ended``: recorded as ended) and its failed attempts
    held until it is seen alive after them."""

    def __init__(self, target: Target, label: str | None = None) -> None:
        self.target = target
        self.label = label or target.label
        self.container: ContainerInfo | None = None
        self.life = 0
        self.state = ""
        self.held: list[ProbeResult] = []
        self.location: Location | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.monitor: NetlinkMonitor | None = None
        self.invariant: GatewayInvariant | None = None
        self.probes: tuple[ProbeSlot, ...] = ()  # as the worker announced them
        self.worker_stats: WorkerStats | None = None
        self.done = False
        self.gone_since: float | None = None
        self.gone_emitted = 0
        self.error = ""
        self.found = Discovery()  # where its veth leads


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
        self._host_netns = config.host_netns  # found from the targets when not given
        self._control: str | None = None
        self._paths: PathWatch | None = None
        self._counters: CounterSampler | None = None
        self._drops: DropWatch | None = None
        self._passive: PassiveSource | None = None
        self._filter = parse_container_filters(config.containers or ())
        self._fleet: ContainerFleet | None = None
        self._changes: queue.SimpleQueue[FleetChange] = queue.SimpleQueue()
        self._by_container: dict[tuple[str, str], _TargetRunner] = {}
        self._label_daemon: dict[str, str] = {}  # fleet label -> its daemon
        self._store: Store | None = None
        self.containers_started = self.containers_ended = 0
        self.ending_dropped = 0  # failed attempts of containers' endings, not stored
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
    def _emit(self, events: list[NetEvent], stamp: tuple[int, int] | None = None) -> None:
        """Sink of every event source (called from their threads)."""
        with self._lock:
            for runner in self._runners:
                if runner.invariant is not None:
                    flip = runner.invariant.check()
                    if flip is not None:
                        events.append(flip)
            paths = self._paths
            if paths is not None:
                paths.note(events)
                changed, risks = paths.update(stamp)
                events.extend(changed)
                for sentence in risks:
                    if sentence not in self.stats.risks:
                        self.stats.risks_seen[sentence] += 1
                self.stats.risks = risks
            writer = self._writer
            for event in events:
                if writer is not None:
                    writer.put_event(event)
                self.stats.add_event_line(str(event.kind), _live_line(event))
                for obs in self.observers:
                    obs.observe_event(event)

    def _note(self, netns_label: str, kind: EventKind, subject: str, detail: EventDetail) -> None:
        wall, mono = wall_mono()
        self._emit([NetEvent(wall, mono, netns_label, kind, "", subject, detail)])

    # -- facts --------------------------------------------------------------------
    def _record_bridge_facts(self, store: Store, when: str) -> None:
        """Every bridge of every watched namespace, as a :class:`Bridge` fact."""
        monitors = [self._host, *(r.monitor for r in self._runners)]
        for monitor in monitors:
            if monitor is None:
                continue
            for bridge in self._bridges_of(monitor):
                store.add_fact(
                    self.run_id,
                    monitor.label,
                    "bridge",
                    bridge.name,
                    {"when": when, **bridge.to_json()},
                )
                if monitor is self._host:
                    for obs in self.observers:
                        set_bridge = getattr(obs, "set_bridge", None)
                        if set_bridge is not None:
                            set_bridge(bridge.name, bool(bridge.pinned))

    def _bridges_of(self, monitor: NetlinkMonitor) -> list[Bridge]:
        with self._lock:
            links = dict(monitor.state.links)
        own_ns = monitor is self._host
        out = []
        for link in links.values():
            if link.kind != "bridge":
                continue
            aat = monitor.addr_assign_type(link.name)
            if own_ns and self._paths is not None:
                self._paths.set_pinned(link.name, aat)
            out.append(
                Bridge(
                    name=link.name,
                    netns=monitor.label,
                    mac=link.mac,
                    addr_assign_type=aat,
                    ports=tuple(sorted(p.name for p in links.values() if p.master == link.index)),
                    arp_notify=self._arp_notify(monitor, link.name),
                )
            )
        return out

    def _arp_notify(self, monitor: NetlinkMonitor, bridge: str) -> int | None:
        try:
            return netns.Namespace.of(monitor.path).arp_notify(bridge)
        except (OSError, NetsleuthError):
            return None  # the namespace went away

    # -- topology and path states -------------------------------------------------
    def _refresh_firewall(self) -> None:
        """Re-read the host namespace's firewall (outside the lock); the states
        it changes are stamped with the first change that made it stale."""
        paths, host = self._paths, self._host
        if paths is None or host is None:
            return
        with self._lock:
            stamp = paths.take_firewall_stamp()
            egress = egress_links(host.state)
        view = read_firewall(self._host_netns, egress)
        with self._lock:
            paths.set_firewall(view)
        self._emit([], stamp)

    def _choose_control(self, locations: dict[str, Location]) -> None:
        """The target probing from the host namespace; one is added when none is."""
        path = "/proc/self/ns/net"
        if self._host_netns is not None:
            path = str(netns.netns_path(self._host_netns))
        st = os.stat(path)
        ident = (st.st_dev, st.st_ino)
        for runner in self._runners:
            loc = locations.get(runner.label)
            if runner.target.kind == "host" or (loc is not None and loc.identity == ident):
                self._control = runner.label
                return
        if not self.config.control or self.config.host_netns is not None:
            return
        if not any(r.found.peer_ns is not None for r in self._runners):
            return  # no bridge found behind any target: no namespace to control from
        runner = _TargetRunner(Target("host", host_netns=self._host_netns))
        self._runners.append(runner)
        self._control = runner.label

    def _follow(self, runner: _TargetRunner, monitor: NetlinkMonitor) -> None:
        """Follow the target's path from now on (under the lock)."""
        found = runner.found
        if self._paths is None or found.peer_ns is None:
            return
        if (found.peer_ns or None) == self._host_netns:
            self._paths.attach(runner.label, found, monitor.state)
        else:
            self._note(
                runner.label,
                EventKind.NOTE,
                "path not followed",
                NoteDetail(
                    f"its bridge lives in namespace {found.peer_ns or 'of this process'}, "
                    f"not in the one watched as host ({self._host_netns or 'this process'})"
                ),
            )

    def _record_topology(self, store: Store) -> None:
        store.add_fact(
            self.run_id,
            "host",
            "host",
            self._host_netns or "",
            {
                "netns": self._host_netns,
                "control": self._control,
                "found": self.config.host_netns is None,
            },
        )
        for path in self._paths.paths if self._paths is not None else []:
            store.add_fact(self.run_id, path.target, "path", path.target, path.to_json())
        self._record_path_conf(store)

    def _record_path_conf(self, store: Store) -> None:
        """What the path causes are judged by: each target's resolv.conf
        nameservers (``resolv-conf``), and the MTU and own ``rp_filter`` of
        every link of the host namespace (``netconf``; ``all`` too)."""
        for runner in self._runners:
            if runner.location is None:
                continue
            resolv = runner.location.resolv_conf()
            try:
                servers = parse_resolv_conf(resolv.read_text())
            except OSError:
                continue
            store.add_fact(
                self.run_id, runner.label, "resolv-conf", str(resolv), {"nameservers": servers}
            )
        if self._host is None:
            return
        with self._lock:
            links = list(self._host.state.links.values())
        routed = ["all", *(link.name for link in links if not link.master)]  # not bridge ports

        def read_rp_filter() -> dict[str, int]:
            out = {}
            for name in routed:
                with contextlib.suppress(OSError, ValueError):
                    out[name] = int(
                        netns.sysctl_path(f"net.ipv4.conf.{name}.rp_filter").read_text()
                    )
            return out

        try:
            rp_filter = netns.Namespace.of(self._host.path).run(read_rp_filter)
        except (OSError, NetsleuthError):
            rp_filter = {}  # the namespace went away
        mtu = {link.name: link.mtu for link in links}
        store.add_fact(self.run_id, "host", "netconf", "host", {"mtu": mtu, "rp_filter": rp_filter})

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
            resolv_conf=str(loc.resolv_conf()),
        )
        proc, parent = spawn_worker(worker_cfg)
        runner.process, runner.conn, runner.done = proc, parent, False
        if self._counters is not None and runner.target.kind != "host":
            self._counters.watch(runner.label, loc.path)
        if self._drops is not None:
            self._drops.watch(runner.label, loc.path)
        if runner.target.kind != "host":
            monitor = NetlinkMonitor(
                runner.label, loc.path, self._emit, sysfs_root=lambda: loc.sysfs, lock=self._lock
            )
            # Inside a target only the gateway's neighbour entry matters.
            monitor.state.record_neigh_for = lambda ip: ip == monitor.state.gateway
            with self._lock:
                runner.monitor = monitor
                if self._host is not None:
                    runner.invariant = GatewayInvariant(
                        runner.label, self._host.state, monitor.state
                    )
                self._follow(runner, monitor)
            monitor.start()
            self._emit([])  # the states it starts in

    def _stop_worker(self, runner: _TargetRunner, wait_s: float) -> None:
        if runner.conn is not None and runner.process is not None:
            with contextlib.suppress(OSError):
                runner.conn.send(Stop())
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
            message = runner.conn.recv()
        except (EOFError, OSError):
            if not runner.done:
                code = runner.process.wait() if runner.process is not None else None
                runner.error = f"probe worker exited unexpectedly (exit status {code})"
            runner.done = True
            return
        match message:
            case Results():
                self._receive_results(runner, message)
            case Ready(probes):
                runner.probes = probes
            case Done(stats):
                runner.worker_stats, runner.done = stats, True
            case Failed(text):
                runner.error, runner.done = text, True
            case _:
                self._fail_worker(
                    runner, f"probe worker sent a {type(message).__name__}, not a protocol message"
                )

    def _receive_results(self, runner: _TargetRunner, batch: Results) -> None:
        label, slots = runner.label, runner.probes
        try:
            results = [
                ProbeResult(
                    wall, mono, label, slots[i].text, slots[i].server, outcome, latency, answer
                )
                for i, wall, mono, outcome, latency, answer in batch.rows()
            ]
        except (IndexError, ValueError):  # a probe it did not announce; a garbled batch
            self._fail_worker(runner, "probe worker sent results that do not fit its probes")
            return
        if runner.container is not None:  # a container's failures wait for it to be seen alive
            results, held = split_held(results)
            runner.held.extend(held)
        self._deliver(results)

    def _fail_worker(self, runner: _TargetRunner, why: str) -> None:
        """A worker that breaks the protocol would not understand Stop: end it."""
        runner.error, runner.done = why, True
        if runner.process is not None:
            runner.process.kill()

    def _deliver(self, results: list[ProbeResult]) -> None:
        if self._writer is not None:
            self._writer.put_probes(results)
        self.stats.add_results(results)
        for obs in self.observers:
            obs.observe_batch(results)

    def _check_presence(self, runner: _TargetRunner, now: float) -> None:
        if runner.container is not None:
            self._check_life(runner)
            return
        current = runner.location
        if current is not None and current.path is not None and _same_namespace(current):
            return  # still there: no need to ask anyone (e.g. the Docker API) again
        loc = runner.target.locate()
        if current is not None and (loc is None or loc.identity != current.identity):
            self._detach(runner)
            runner.gone_since, runner.gone_emitted = now, 0
            self._note(
                runner.label,
                EventKind.TARGET_GONE,
                runner.target.ref,
                TargetDetail("namespace removed" if loc is None else "namespace re-created"),
            )
        if runner.location is None and loc is not None and not runner.done:
            self._note(runner.label, EventKind.TARGET_BACK, runner.target.ref, TargetDetail())
            runner.gone_since = None
            runner.found = discover(runner.target, loc)
            self._start_target(runner, loc)

    def _detach(self, runner: _TargetRunner, *, kill: bool = False) -> None:
        """A target whose namespace went (or whose container ended): out of
        every state, its worker stopped (killed first with ``kill``), its
        counters and drops no longer read, no location."""
        if self._paths is not None:
            with self._lock:
                ended = self._paths.detach(runner.label)
            self._emit(ended)  # a target that is gone is in no state
        if kill and runner.process is not None:
            runner.process.kill()
        self._stop_worker(runner, 0.0)
        if self._counters is not None:
            self._counters.forget(runner.label)
        if self._drops is not None:
            self._drops.forget(runner.label)
        runner.location = None

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
            for slot in runner.probes:
                results.append(
                    ProbeResult(
                        wall - offset,
                        mono - offset,
                        runner.label,
                        slot.text,
                        slot.server,
                        Outcome.TARGET_GONE,
                    )
                )
        runner.gone_emitted = due
        self._deliver(results)

    # -- the fleet (--containers) ------------------------------------------------------
    def _fleet_begin(self, locations: dict[str, Location]) -> None:
        """Follow the daemons' containers; the running ones are targets from the start."""
        cfg = self.config
        if cfg.containers is None:
            return
        self._fleet = ContainerFleet(
            cfg.docker_hosts or (DEFAULT_DOCKER_HOST,), self._filter, self._changes.put
        )
        self._fleet.start()
        for info in self._fleet.initial:
            loc = _pid_location(info.pid)
            runner = self._life_runner(info) if loc is not None else None
            if loc is None or runner is None or runner.state == "running":
                continue  # ended already (its events say so), a --target, or seen twice
            self._begin_life(runner, info)
            locations[runner.label] = loc
            runner.found = discover(runner.target, loc)

    def _life_runner(self, info: ContainerInfo) -> _TargetRunner | None:
        """The runner of a container: the same for every life of one container
        and for a later container of the same name on the same daemon (one
        series); None when a --target already probes from it."""
        key = (info.daemon, info.id)
        runner = self._by_container.get(key)
        if runner is not None:
            return runner
        label = target_label(info.name or info.id[:12], info.daemon, self._label_daemon)
        runner = next((r for r in self._runners if r.label == label), None)
        if runner is not None and (runner.container is None or runner.state == "running"):
            return None
        if runner is None:
            runner = _TargetRunner(Target("container", info.id, docker_host=info.daemon), label)
            with self._lock:
                self._runners.append(runner)
        runner.target = Target("container", info.id, docker_host=info.daemon)
        self._label_daemon.setdefault(label, info.daemon)
        self._by_container[key] = runner
        return runner

    def _begin_life(self, runner: _TargetRunner, info: ContainerInfo) -> None:
        runner.container, runner.state, runner.error = info, "running", ""
        runner.life += 1
        runner.held = []
        runner.done = False
        self.containers_started += 1

    def _apply_changes(self) -> None:
        """What the fleet saw since the last look (in the run's thread)."""
        for _ in range(10_000):  # bounded; the rest waits for the next look
            try:
                change = self._changes.get_nowait()
            except queue.Empty:
                return
            match change:
                case Started(info):
                    self._fleet_started(info)
                case Ended(daemon, cid, code):
                    self._fleet_ended(daemon, cid, code)
                case Lost(daemon, reason):
                    self._note(
                        "host",
                        EventKind.NOTE,
                        "containers",
                        NoteDetail(daemon=daemon, message=f"containers not followed: {reason}"),
                    )

    def _fleet_started(self, info: ContainerInfo) -> None:
        runner = self._life_runner(info)
        if runner is None or runner.state == "running":
            return
        self._begin_life(runner, info)
        self._add_container_fact(runner, "started")
        loc = _pid_location(info.pid) if info.pid else None
        if loc is None:
            runner.state = "exited"  # gone before it could be probed; its end follows
            return
        runner.found = discover(runner.target, loc)
        self._start_target(runner, loc)
        self._record_resolv_conf(runner)

    def _fleet_ended(self, daemon: str, cid: str, exit_code: int | None) -> None:
        runner = self._by_container.get((daemon, cid))
        if runner is None or runner.container is None:
            return
        if runner.state == "running":
            self._stop_life(runner)
        if runner.state not in ("running", "exited"):
            return  # its die came before: this is its destroy
        runner.state = "ended"
        self.containers_ended += 1
        info = runner.container
        self._note(
            runner.label,
            EventKind.TARGET_ENDED,
            info.name,
            EndDetail(info.daemon, info.id, info.image, exit_code),
        )
        self._add_container_fact(runner, "ended", exit_code)

    def _check_life(self, runner: _TargetRunner) -> None:
        """A container whose init is still there vouches for the failures held
        so far; one whose init is gone is ending: its worker stops and what it
        held is dropped (no target-gone rows: an end is not an outage)."""
        if runner.state != "running":
            return
        loc = runner.location
        alive = loc is not None and loc.path is not None and _same_namespace(loc)
        if alive:
            if runner.held:
                self._deliver(settle_held(runner.held, alive=True))
                runner.held = []
            return
        self._stop_life(runner)
        runner.state = "exited"

    def _stop_life(self, runner: _TargetRunner) -> None:
        self._detach(runner, kill=True)  # what its worker still has to say is the ending's
        self.ending_dropped += len(runner.held)
        runner.held = settle_held(runner.held, alive=False)
        runner.error = ""  # e.g. a worker that came after the namespace had gone

    def _add_container_fact(
        self, runner: _TargetRunner, event: str, exit_code: int | None = None
    ) -> None:
        if self._store is None or runner.container is None:
            return
        data = container_fact(
            runner.container,
            event=event,
            life=runner.life,
            exit_code=exit_code,
            keep_labels=self._filter.keys,
        )
        self._store.add_fact(self.run_id, runner.label, FACT_KIND, runner.container.id, data)

    def _record_resolv_conf(self, runner: _TargetRunner) -> None:
        if self._store is None or runner.location is None:
            return
        resolv = runner.location.resolv_conf()
        try:
            servers = parse_resolv_conf(resolv.read_text())
        except OSError:
            return
        self._store.add_fact(
            self.run_id, runner.label, "resolv-conf", str(resolv), {"nameservers": servers}
        )

    def _settle_fleet(self) -> None:
        """At the end: held failures of containers still alive are recorded."""
        for runner in self._runners:
            if runner.container is not None and runner.held:
                loc = runner.location
                alive = runner.state == "running" and loc is not None and _same_namespace(loc)
                self._deliver(settle_held(runner.held, alive=alive))
                runner.held = []

    # -- the run --------------------------------------------------------------------
    def run(
        self, on_tick: Callable[[LiveStats, float], None] | None = None, tick_interval: float = 0.5
    ) -> WatchSummary:
        cfg = self.config
        locations: dict[str, Location] = {}
        for runner in self._runners:
            loc = runner.target.locate()
            if loc is None:
                raise TargetNotFound(_not_found_hint(runner.target))
            locations[runner.label] = loc
            runner.found = discover(runner.target, loc)
        self._fleet_begin(locations)
        self._host_netns = choose_host(self.config.host_netns, [r.found for r in self._runners])
        self._choose_control(locations)
        store = Store(self.store_path, create=True)
        self._store = store
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
                    "host_netns": self._host_netns,
                    "control": self._control,
                },
            )
            self._writer = StoreWriter(
                self.store_path,
                self.run_id,
                retain_ns=cfg.retain_ns,
                max_bytes=cfg.max_store_bytes,
            )
            self._start_sources()
            self._refresh_firewall()
            for runner in self._runners:
                loc = locations.get(runner.label) or runner.target.locate()
                if loc is None:
                    raise TargetNotFound(_not_found_hint(runner.target))
                self._start_target(runner, loc)
                self._add_container_fact(runner, "started")
            self._record_bridge_facts(store, "start")
            self._record_topology(store)
            self._loop(started, on_tick, tick_interval)
        finally:
            if self._fleet is not None:
                self._fleet.stop()
            for runner in self._runners:
                self._stop_worker(runner, cfg.timeout + 1.0)
            self._settle_fleet()
            self._record_bridge_facts(store, "end")
            self._stop_sources()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self.run_id:
                store.end_run(self.run_id)
            store.close()
            self._store = None
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
            worker_stats={
                r.label: r.worker_stats.to_json() if r.worker_stats else {} for r in self._runners
            },
            stats=self.stats,
            host_netns=self._host_netns,
            control=self._control,
            containers=self.containers_started,
            containers_ended=self.containers_ended,
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
            if (
                not conns
                and self._fleet is None
                and self._passive is None
                and all(r.done for r in self._runners)
            ):
                break  # --count reached everywhere
            if conns:
                for conn in wait(list(conns), timeout=0.05):
                    self._receive(conns[conn])  # type: ignore[index]
            else:
                time.sleep(0.05)
            if self._passive is not None:
                self._deliver_passive()
            now = time.monotonic()
            if now >= next_presence:
                self._apply_changes()
                for runner in self._runners:
                    self._check_presence(runner, now)
                    self._emit_gone(runner, now)
                if self._paths is not None and self._paths.firewall_stale:
                    self._refresh_firewall()  # at most every 100 ms, however busy nft is
                next_presence = now + 0.1
            if on_tick is not None and now >= next_tick:
                on_tick(self.stats, now - started)
                next_tick = now + tick_interval
        if on_tick is not None:
            on_tick(self.stats, time.monotonic() - started)

    def _start_sources(self) -> None:
        cfg = self.config
        host_ns = self._host_netns
        host_path = None if host_ns is None else netns.netns_path(host_ns)
        if host_ns is not None:
            if not netns.exists(host_ns):
                raise TargetNotFound(f"host namespace {host_ns} does not exist")
            self._anchor = netns.SysfsAnchor(host_ns)
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
        with self._lock:
            self._paths = PathWatch(self._host, control=self._control)
        self._nft = NftMonitor("host", host_ns, self._emit).start()
        if cfg.counters:
            self._counters = CounterSampler(self._emit, cfg.counters)
            with self._lock:
                uplinks = egress_links(self._host.state)
            self._counters.watch("host", None if host_path is None else str(host_path), uplinks)
            self._counters.start()
        if cfg.drops:
            self._drops = DropWatch(self._emit)
            self._drops.watch("host", None if host_path is None else str(host_path))
            self._drops.start()  # in its own thread: a note event says when it runs, or why not
        if cfg.docker_hosts:
            from netsleuth.docker import DockerEventSource

            source = DockerEventSource(cfg.docker_hosts, lambda e: self._emit([e]))
            source.start()
            self._docker = [source]
        if cfg.passive is not None:
            self._start_passive(cfg.passive, host_path)

    def _start_passive(self, given: tuple[str, ...], host_path: Path | None) -> None:
        """Real DNS queries on the bridges (netsleuth.passive)."""
        from netsleuth.passive.watch import start_passive

        assert self._host is not None
        with self._lock:
            state = self._host.state
            bridges = sorted(link.name for link in state.links.values() if link.kind == "bridge")
            uplinks = egress_links(state)
        path_bridges = [
            r.found.bridge
            for r in self._runners
            if r.found.bridge and (r.found.peer_ns or None) == self._host_netns
        ]
        self._passive = start_passive(
            given,
            bridges=bridges,
            path_bridges=path_bridges,
            uplinks=uplinks,
            host_netns=self._host_netns,
            host_path=host_path,
            docker_hosts=self.config.docker_hosts,
            timeout_s=self.config.timeout,
        )

    def _deliver_passive(self) -> None:
        assert self._passive is not None
        results = self._passive.take()
        if results:
            self._deliver(results)

    @property
    def passive_status(self) -> str:
        """One line: what ``--passive`` watched and saw (empty without it)."""
        return self._passive.status if self._passive is not None else ""

    @property
    def drops_status(self) -> str:
        """One line: how kernel drops are recorded, or what is missing."""
        return self._drops.status if self._drops is not None else ""

    def _stop_sources(self) -> None:
        if self._passive is not None:
            from netsleuth.passive.watch import FACT_KIND

            self._passive.stop()
            self._deliver_passive()
            if self._store is not None and self.run_id:
                self._store.add_fact(self.run_id, "host", FACT_KIND, "dns", self._passive.summary())
        if self._counters is not None:
            self._counters.stop()
        if self._drops is not None:
            self._drops.stop()
        for source in self._docker:
            source.stop()
        if self._nft is not None:
            self._nft.stop()
        if self._host is not None:
            self._host.stop()
        if self._anchor is not None:
            self._anchor.close()


def _live_line(event: NetEvent) -> str:
    """The live view's line for an event; counters only when a loss counter
    rose (traffic counts rise every second and say nothing on their own)."""
    detail = event.detail
    if isinstance(detail, CounterSample):
        losses = [
            f"{name} +{delta}"
            for name, delta in sorted(detail.deltas.items())
            if not name.endswith(LOAD_COUNTERS)
        ]
        return f"{event.netns} counters {', '.join(losses)}" if losses else ""
    return f"{event.netns} {event.kind} {event.ifname} {event.subject}"


def _pid_location(pid: int) -> Location | None:
    """Where a container's init process has its namespace (None: it is gone)."""
    path = f"/proc/{pid}/ns/net"
    try:
        st = os.stat(path)
    except OSError:
        return None
    return Location(path, None, (st.st_dev, st.st_ino), Path(f"/proc/{pid}/root/sys"))


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
