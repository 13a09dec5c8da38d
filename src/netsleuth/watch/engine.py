"""The watch engine: targets, probe workers, event sources and the store,
wired together. ``netsleuth watch`` and the lab both drive this one engine.

Threads and processes it owns (and joins on the way out): one probe worker
process per target, one netlink monitor thread per namespace (the host's and
each target's), an ``nft monitor`` for the host namespace, optional Docker
event sources, and the store writer. The calling thread runs :meth:`run`:
it receives result batches, watches targets come and go, and ticks the view.

The topology is found, not asked for: for each target the engine follows the
veth its default route leaves by to its peer, the bridge that peer is a port
of and the namespace holding it (:func:`netsleuth.packets.hops.target_specs`).
That namespace plays "host" (its bridges, NAT, firewall and link events are
recorded) unless ``host_netns`` overrides it, and a control target probing
from it is added when none of the user's targets is there. After every event
batch each target's path is checked for the states causes predict
(:mod:`netsleuth.events.paths`): their beginnings and ends are stored as
``state-entered`` / ``state-left`` events, and gateways at risk are shown.
"""

from __future__ import annotations

import contextlib
import json
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
from netsleuth.events.paths import FirewallView, StateTracker, TargetPath, at_risk, path_states
from netsleuth.events.state import NamespaceState
from netsleuth.model import ADDR_ASSIGN_SET, Bridge, EventKind, NetEvent, Outcome, ProbeResult
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
    host_netns: str | None = None  # the namespace playing "host"; None: found from the targets
    control: bool = True  # add a control target where the bridges are, if none is given
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
    host_netns: str | None = None  # the namespace that played "host" (None: ours)
    control: str | None = None  # the control target's label
    at_risk: dict[str, int] = field(default_factory=dict)  # risk sentence -> times it began


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
        self.peer_ns: str | None = None  # the namespace of its veth's peer ("" ours), if found
        self.peer = ""
        self.bridge = ""
        self.path: TargetPath | None = None
        self.tracker: StateTracker | None = None
        self.nat_seen = False
        self.auto = False  # added by the engine as the host control


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
        self._pinned: dict[str, bool | None] = {}
        self._firewall: FirewallView | None = None
        self._firewall_dirty: tuple[int, int] | None = None  # stamp of the first change unread
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
            self._watch_bridges(events)
            events.extend(self._update_states(stamp))
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
            if own_ns:
                self._pinned[link.name] = None if aat is None else aat == ADDR_ASSIGN_SET
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

    # -- states -----------------------------------------------------------------------
    def _watch_bridges(self, events: Sequence[NetEvent]) -> None:
        """Keep the pinned flags current and note firewall changes (under the lock)."""
        for ev in events:
            if ev.netns != "host":
                continue
            if ev.kind is EventKind.MAC_CHANGED and ev.detail.get("kind") == "bridge":
                aat = ev.detail.get("addr_assign_type")
                self._pinned[ev.ifname] = None if aat is None else int(aat) == ADDR_ASSIGN_SET
            elif ev.kind is EventKind.LINK_ADDED and ev.detail.get("kind") == "bridge":
                self._pinned.pop(ev.ifname, None)
            elif ev.kind is EventKind.FIREWALL_CHANGED and self._firewall_dirty is None:
                self._firewall_dirty = (ev.wall_ns, ev.mono_ns)

    def _pinned_of(self, bridge: str) -> bool | None:
        if bridge not in self._pinned and self._host is not None:
            aat = self._host.addr_assign_type(bridge)
            self._pinned[bridge] = None if aat is None else aat == ADDR_ASSIGN_SET
        return self._pinned.get(bridge)

    def _update_states(self, stamp: tuple[int, int] | None = None) -> list[NetEvent]:
        """Each target's path states, as events where they changed (under the lock);
        ``stamp``: when what changed them happened (default: now)."""
        host = self._host
        if host is None:
            return []
        events: list[NetEvent] = []
        for runner in self._runners:
            if runner.tracker is None or runner.path is None or runner.monitor is None:
                continue
            states = path_states(
                runner.path,
                host.state,
                runner.monitor.state,
                pinned=self._pinned_of(runner.path.bridge) if runner.path.bridge else None,
                firewall=self._firewall,
                nat_seen=runner.nat_seen,
            )
            events.extend(runner.tracker.update(states, stamp))
        risks = [
            r.sentence
            for r in at_risk({r.label: r.tracker.current for r in self._runners if r.tracker})
        ]
        for sentence in risks:
            if sentence not in self.stats.risks:
                self.stats.risks_seen[sentence] += 1
        self.stats.risks = risks
        return events

    def _refresh_firewall(self) -> None:
        """Re-read the host namespace's nftables rule set (outside the lock).
        States it changes are stamped with the first firewall event that made
        it stale, not with when the rule set was read."""
        from netsleuth.audit.firewall import parse_nft_json

        with self._lock:
            stamp, self._firewall_dirty = self._firewall_dirty, None
        argv = netns.exec_argv(self._host_netns, ["nft", "-j", "list", "ruleset"])
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
            doc = json.loads(out.stdout) if out.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired):
            doc = None
        host = self._host
        if not isinstance(doc, dict) or host is None:
            view = None
        else:
            nat, chains = parse_nft_json(doc)
            with self._lock:  # every interface traffic could leave by: not a bridge or its ports
                egress = tuple(
                    sorted(
                        link.name
                        for link in host.state.links.values()
                        if link.kind != "bridge" and not link.master and link.name != "lo"
                    )
                )
            view = FirewallView(tuple(nat), tuple(chains), egress)
        with self._lock:
            self._firewall = view
            for runner in self._runners:
                path = runner.path
                if view is not None and path is not None and path.subnet and path.bridge:
                    runner.nat_seen = runner.nat_seen or view.nat_covers(path.subnet, path.bridge)
        self._emit([], stamp)

    # -- topology ---------------------------------------------------------------------
    def _discover(self, runner: _TargetRunner, loc: Location) -> None:
        """Find the peer of the target's veth, its bridge and their namespace."""
        from netsleuth.packets.hops import target_specs

        runner.peer_ns, runner.peer, runner.bridge = None, "", ""
        if loc.path is None or runner.target.kind == "host":
            return
        try:
            specs = target_specs(loc.path, runner.label)
        except NetsleuthError:
            return  # no veth, or its peer is in an unnamed namespace: no path to follow
        for spec in specs:
            if spec.role == "client":
                runner.peer_ns, runner.peer = spec.netns, spec.ifname
            elif spec.role == "bridge":
                runner.bridge = spec.ifname

    def _choose_host(self) -> None:
        """The namespace playing host: given, or the one most targets' bridges live in."""
        if self.config.host_netns is not None:
            return
        found = [r.peer_ns for r in self._runners if r.peer_ns is not None]
        if found:
            best = max(sorted(set(found)), key=found.count)
            self._host_netns = best or None

    def _host_identity(self) -> tuple[int, int]:
        path = (
            "/proc/self/ns/net"
            if self._host_netns is None
            else str(netns.netns_path(self._host_netns))
        )
        st = os.stat(path)
        return (st.st_dev, st.st_ino)

    def _choose_control(self, locations: dict[str, Location]) -> None:
        """The target probing from the host namespace; one is added when none is."""
        ident = self._host_identity()
        for runner in self._runners:
            loc = locations.get(runner.label)
            if runner.target.kind == "host" or (loc is not None and loc.identity == ident):
                self._control = runner.label
                return
        if not self.config.control or self.config.host_netns is not None:
            return
        if not any(r.peer_ns is not None for r in self._runners):
            return  # no bridge found behind any target: no namespace to control from
        runner = _TargetRunner(Target("host", host_netns=self._host_netns))
        runner.auto = True
        self._runners.append(runner)
        self._control = runner.label

    def _follow_path(self, runner: _TargetRunner) -> None:
        """Complete the target's path from its own namespace's state (under the lock)."""
        monitor = runner.monitor
        runner.path, runner.tracker = None, None
        if monitor is None or runner.peer_ns is None:
            return
        if (runner.peer_ns or None) != self._host_netns:
            self._note(
                runner.label,
                EventKind.NOTE,
                "path not followed",
                detail=f"its bridge lives in namespace {runner.peer_ns or 'of this process'}, "
                f"not in the one watched as host ({self._host_netns or 'this process'})",
            )
            return
        state: NamespaceState = monitor.state
        veth = state.links.get(state.gateway_oif) if state.gateway_oif else None
        if veth is None:
            veths = [link for link in state.links.values() if link.kind == "veth"]
            veth = veths[0] if len(veths) == 1 else None
        if veth is None:
            return
        runner.path = TargetPath(
            target=runner.label,
            veth=veth.name,
            peer=runner.peer,
            bridge=runner.bridge,
            subnet=state.subnet_of(veth.index),
            gateway=state.gateway,
        )
        runner.tracker = StateTracker(runner.label, wall_mono)
        fw = self._firewall
        if fw is not None and runner.path.subnet and runner.path.bridge:
            runner.nat_seen = runner.nat_seen or fw.nat_covers(
                runner.path.subnet, runner.path.bridge
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
        for runner in self._runners:
            if runner.path is not None:
                store.add_fact(
                    self.run_id, runner.label, "path", runner.label, runner.path.to_json()
                )

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
            with self._lock:
                runner.monitor = monitor
                if self._host is not None:
                    runner.invariant = GatewayInvariant(
                        runner.label, self._host.state, monitor.state
                    )
                self._follow_path(runner)
            monitor.start()
            self._emit([])  # the states it starts in

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
            with self._lock:
                tracker, runner.tracker, runner.path = runner.tracker, None, None
            if tracker is not None:
                self._emit(tracker.close())  # a target that is gone is in no state
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
            self._discover(runner, loc)
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
        locations: dict[str, Location] = {}
        for runner in self._runners:
            loc = runner.target.locate()
            if loc is None:
                raise TargetNotFound(_not_found_hint(runner.target))
            locations[runner.label] = loc
            self._discover(runner, loc)
        self._choose_host()
        self._choose_control(locations)
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
                    "host_netns": self._host_netns,
                    "control": self._control,
                },
            )
            self._writer = StoreWriter(self.store_path, self.run_id)
            self._start_sources()
            self._refresh_firewall()
            for runner in self._runners:
                loc = locations.get(runner.label) or runner.target.locate()
                if loc is None:
                    raise TargetNotFound(_not_found_hint(runner.target))
                self._start_target(runner, loc)
            self._record_bridge_facts(store, "start")
            self._record_topology(store)
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
            host_netns=self._host_netns,
            control=self._control,
            at_risk=dict(self.stats.risks_seen),
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
                if self._firewall_dirty is not None:
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
        self._nft = NftMonitor("host", host_ns, self._emit).start()
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
