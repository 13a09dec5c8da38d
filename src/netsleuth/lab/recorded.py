"""Causes the lab cannot build on this machine, replayed from their published
signature instead (``lab run --fault ID`` for a :class:`FaultSpec` with a
``recorded`` reason).

Three causes need what a throwaway namespace cannot have: the conntrack table
filling up (``nf_conntrack_max`` is read-only inside a namespace and must not
be changed for the machine), the neighbour table overflowing (its thresholds
and ``/proc/net/stat/arp_cache`` exist only in the initial namespace: the
table is machine-wide), and the conntrack insert race (this kernel resolves
the clash of two packets of one flow, so the race cannot be forced at will).
For each, :func:`build` writes what ``watch`` records on a host that has the
fault, as the issues that describe it report it, and nothing ``watch`` would
not record:

- ``conntrack-race``: single lost queries from the namespaces (users see
  5 s resolver stalls: their resolver waits that long to retry; the probe,
  with its own timeout, records a timeout) while ``ct.insert_failed`` and
  ``ct.drop`` rise by one in the NATing host namespace, and
  ``ct.clash_resolve`` rises now and then for the clashes the kernel did
  resolve; the table is nearly empty; the host control (not NATed) never
  fails;
- ``conntrack-full``: bursts of seconds in which every new flow is dropped
  unless an unanswered entry can be evicted (``ct.drop`` and
  ``ct.early_drop`` rise, ``ct.count`` is at ``ct.max``); each probe is a new
  flow, so namespaces time out and the host control's own sends fail (a
  netfilter drop on output returns EPERM);
- ``neighbour-table-full``: the table is at ``gc_thresh3``; forced garbage
  collection evicts entries not updated for 5 s, a gateway entry among them,
  and while the table stays full no new entry can be made, so that
  namespace's sends fail (no neighbour: EINVAL) for seconds while
  ``arp.table_fulls``, ``arp.forced_gc_runs`` and ``arp.unresolved_discards``
  rise in the initial namespace; the entry's removal and re-creation are
  recorded as the target's neighbour events.

Probes run at ``opts.rate`` for ``opts.duration`` (at least
:data:`MIN_REPLAY_S`) from ``opts.containers`` namespaces and the host
control, with the worker's schedule jitter; kernel counters are sampled once
a second in the host namespace (here the initial one: ``host_netns`` None)
and turned into ``counters`` events by the
sampler's own :class:`~netsleuth.events.counters.CounterDiff`. Everything is
drawn from one seeded generator and the scenario's clock starts at a fixed
instant (:data:`REPLAY_START_NS`), so the same seed writes the same probes,
events and facts; nothing sleeps. The run's args, its label and the
:class:`~netsleuth.lab.summary.CaseResult` say it is a replay.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netsleuth.errors import InvalidArgument
from netsleuth.events.counters import CounterDiff
from netsleuth.lab.summary import CaseResult, summarize_case
from netsleuth.lab.topology import (
    BRIDGE,
    BRIDGE_ADDR,
    DNS_ANSWER,
    DNS_NAME,
    SUBNET,
    UPLINK,
    UPLINK_UP_ADDR,
)
from netsleuth.model import (
    EventKind,
    NeighChange,
    NetEvent,
    Outcome,
    ProbeResult,
    StateChange,
    StateKind,
)
from netsleuth.store import Store, StoreWriter

if TYPE_CHECKING:
    from netsleuth.lab.faults import FaultSpec
    from netsleuth.lab.run import LabOptions

__all__ = ["REPLAY_START_NS", "SCENARIOS", "Replay", "build", "replay", "replay_note"]

S = 1_000_000_000
MS = 1_000_000

REPLAY_START_NS = 1_700_000_000 * S
"""Wall clock of the scenario's start (2023-11-14 22:13:20 UTC): fixed, so a
seed always writes the same rows."""

_MONO_START_NS = 86_400 * S  # the scenario's host had been up a day
_CT_MAX = 262_144
_CT_MAX_SMALL = 65_536  # the conntrack-full host: the default of a small machine
_GC_THRESH3 = 1_024  # net.ipv4.neigh.default.gc_thresh3, the default
_SAMPLE_NS = S  # the counter sampler's interval
_WARMUP_NS = S  # the first second: the sampler's baseline, nothing happens yet

BRIDGE_MAC = "02:42:c6:12:00:01"  # set by the container engine: the bridge is pinned
PROBE = f"dns:{UPLINK_UP_ADDR}/{DNS_NAME}/A"
HOST = "host"


MIN_REPLAY_S = 90.0
"""A replay records at least this long: with one-second counter samples, a
shorter record cannot tell a burst of drops from chance (p stays above 0.01)."""


def replay_seconds(duration: float) -> float:
    """How long a replay records for ``--duration``."""
    return max(duration, MIN_REPLAY_S)


def replay_note(cause: str, why: str) -> str:
    """What a replayed case says about itself (the CLI prints it, JSON keeps it)."""
    return (
        f"replayed, not live: {cause} is a scenario built from the cause's published "
        f"signature, not a live reproduction ({why}); it records at least "
        f"{MIN_REPLAY_S:.0f} s of probes"
    )


# -- the world the scenario runs in ---------------------------------------------------


class _Kernel:
    """The host namespace's counters over the scenario: increments at instants
    (cumulative counters) and a function of time for the gauges."""

    def __init__(self, start: dict[str, int], gauges: Callable[[int], dict[str, int]]) -> None:
        self.start = dict(start)
        self.gauges = gauges
        self._incs: list[tuple[int, str, int]] = []

    def add(self, t_ns: int, name: str, n: int = 1) -> None:
        if n > 0:
            self._incs.append((t_ns, name, n))

    def readings(self, times: list[int]) -> Iterator[tuple[int, dict[str, int]]]:
        """What the sampler reads at each of ``times`` (ascending)."""
        incs = sorted(self._incs)
        values = dict(self.start)
        i = 0
        for t in times:
            while i < len(incs) and incs[i][0] <= t:
                _, name, n = incs[i]
                values[name] = values.get(name, 0) + n
                i += 1
            yield t, {**values, **self.gauges(t)}


@dataclass(slots=True)
class _World:
    rng: random.Random
    rate: float
    duration_ns: int
    containers: tuple[str, ...]
    sends: dict[str, list[int]]
    """Per target, the wall times its probes were sent (ascending)."""
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    events: list[NetEvent] = field(default_factory=list)
    kernel: _Kernel | None = None
    evictions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """Per target, when its gateway entry was gone (neighbour-table-full)."""

    @property
    def start_ns(self) -> int:
        return REPLAY_START_NS

    @property
    def end_ns(self) -> int:
        return REPLAY_START_NS + self.duration_ns

    @property
    def targets(self) -> tuple[str, ...]:
        return (*self.containers, HOST)

    def fail(self, target: str, k: int, outcome: Outcome) -> None:
        self.outcomes[target][k] = outcome

    def within(self, target: str, start: int, end: int) -> range:
        """Indices of ``target``'s probes sent in ``[start, end)``."""
        times = self.sends[target]
        return range(bisect.bisect_left(times, start), bisect.bisect_left(times, end))

    def neigh(self, t_ns: int, target: str, change: NeighChange) -> None:
        """A change of ``target``'s gateway entry, as its netlink monitor records it."""
        self.events.append(
            NetEvent(
                t_ns, _mono(t_ns), target, EventKind.NEIGH_CHANGED, "eth0", BRIDGE_ADDR, change
            )
        )

    def state(self, t_ns: int, target: str, kind: EventKind, change: StateChange) -> None:
        """A path state of ``target`` entered or left, as the engine records it."""
        self.events.append(
            NetEvent(t_ns, _mono(t_ns), target, kind, change.bridge, str(change.state), change)
        )

    def poisson(self, per_s: float, start: int | None = None, end: int | None = None) -> list[int]:
        """Instants of a Poisson process of ``per_s`` events a second."""
        t = float(self.start_ns + _WARMUP_NS if start is None else start)
        stop = self.end_ns if end is None else end
        out: list[int] = []
        for _ in range(1_000_000):  # bounded: ends at ``stop``
            t += self.rng.expovariate(per_s) * S
            if t >= stop:
                break
            out.append(int(t))
        return out

    def spells(
        self, first: tuple[float, float], gap: tuple[float, float], length: tuple[float, float]
    ) -> list[tuple[int, int]]:
        """Bursts ``[start, end)``: the first after ``first`` s, then ``gap`` s
        apart, each ``length`` s long, all before the last second."""
        out: list[tuple[int, int]] = []
        t = self.start_ns + int(self.rng.uniform(*first) * S)
        for _ in range(100_000):  # bounded: ends with the scenario
            end = t + int(self.rng.uniform(*length) * S)
            if end > self.end_ns - S:
                break
            out.append((t, end))
            t = end + int(self.rng.uniform(*gap) * S)
        return out


def _mono(wall_ns: int) -> int:
    return wall_ns - REPLAY_START_NS + _MONO_START_NS


def _walk(rng: random.Random, seconds: int, low: float, high: float) -> list[float]:
    """A bounded random walk, one value a second (a gauge's slow drift)."""
    x = rng.uniform(low, high)
    out = []
    for _ in range(seconds + 2):
        x = min(high, max(low, x + rng.gauss(0.0, (high - low) / 20)))
        out.append(x)
    return out


def _second(w: _World, t_ns: int) -> int:
    return max(0, (t_ns - w.start_ns) // S)


# -- the scenarios ----------------------------------------------------------------------


RACE_LOSSES_PER_S = 0.2
"""Queries of the probing namespaces lost to the race, per second on the host."""


def _conntrack_race(w: _World) -> None:
    """Single lost queries; ``ct.insert_failed`` (and ``ct.drop``) by one each."""
    rng = w.rng
    per_probe = min(0.05, RACE_LOSSES_PER_S / (len(w.containers) * w.rate))
    drift = _walk(rng, w.duration_ns // S, 300, 900)
    k = _Kernel(
        {
            "ct.insert_failed": rng.randrange(0, 40),
            "ct.drop": rng.randrange(40, 120),
            "ct.early_drop": 0,
            "ct.clash_resolve": rng.randrange(500, 5000),
            "ct.invalid": rng.randrange(10, 400),
            "ct.search_restart": rng.randrange(0, 2000),
            **_arp_start(rng),
        },
        lambda t: {
            "ct.count": int(drift[_second(w, t)]),
            "ct.max": _CT_MAX,
            "arp.entries": 14,
        },
    )
    for target in w.containers:
        for i, sent in enumerate(w.sends[target]):
            if sent >= w.start_ns + _WARMUP_NS and rng.random() < per_probe:
                w.fail(target, i, Outcome.TIMEOUT)  # users wait 5 s for their resolver's retry
                at = sent + rng.randrange(50_000, 400_000)  # confirmed on its way out
                k.add(at, "ct.insert_failed")
                k.add(at, "ct.drop")
    for at in w.poisson(1 / 25):  # other NATed flows of the host lose the race too
        k.add(at, "ct.insert_failed")
        k.add(at, "ct.drop")
    for at in w.poisson(1 / 5):  # clashes the kernel resolved: nothing lost
        k.add(at, "ct.clash_resolve", rng.randint(1, 2))
    w.kernel = k


def _conntrack_full(w: _World) -> None:
    """Bursts with the table full: new flows dropped unless one can be evicted."""
    rng = w.rng
    spells = w.spells(first=(2.0, 4.0), gap=(4.0, 8.0), length=(1.0, 2.5))
    ramps = [int(rng.uniform(0.6, 1.2) * S) for _ in spells]
    drift = _walk(rng, w.duration_ns // S, 0.5, 0.7)
    tau_ns = rng.uniform(5.0, 9.0) * S  # unanswered entries expire, the burst's flows end

    def count(t: int) -> int:
        base = drift[_second(w, t)] * _CT_MAX_SMALL
        level = base
        for (start, end), ramp in zip(spells, ramps, strict=True):
            if start - ramp <= t < start:
                level = max(level, base + (_CT_MAX_SMALL - base) * (t - start + ramp) / ramp)
            elif start <= t < end:
                return _CT_MAX_SMALL
            elif t >= end:
                left = (_CT_MAX_SMALL - base) * math.exp(-(t - end) / tau_ns)
                level = max(level, base + left)
        return int(level)

    k = _Kernel(
        {
            "ct.insert_failed": rng.randrange(0, 40),
            "ct.drop": rng.randrange(0, 200),
            "ct.early_drop": rng.randrange(0, 200),
            "ct.clash_resolve": rng.randrange(500, 5000),
            "ct.invalid": rng.randrange(10, 400),
            "ct.search_restart": rng.randrange(0, 2000),
            **_arp_start(rng),
        },
        lambda t: {"ct.count": count(t), "ct.max": _CT_MAX_SMALL, "arp.entries": 14},
    )
    for start, end in spells:
        for target in w.targets:
            lost = Outcome.ERROR if target == HOST else Outcome.TIMEOUT  # EPERM on output
            for i in w.within(target, start, end):
                at = w.sends[target][i] + rng.randrange(20_000, 200_000)
                if rng.random() < 0.85:
                    w.fail(target, i, lost)
                    k.add(at, "ct.drop")
                else:  # an unanswered entry was evicted to make room
                    k.add(at, "ct.early_drop")
        for t in range(start, end, 100 * MS):  # the burst's own new flows
            k.add(t + rng.randrange(0, 100 * MS), "ct.drop", _poisson(rng, 40.0))
            k.add(t + rng.randrange(0, 100 * MS), "ct.early_drop", _poisson(rng, 5.0))
    w.kernel = k


def _neighbour_table_full(w: _World) -> None:
    """Gateway entries evicted by forced GC and not re-created for seconds."""
    rng = w.rng
    spells = w.spells(first=(2.0, 4.0), gap=(5.0, 10.0), length=(0.5, 1.5))
    full = [(s - 200 * MS, e + 200 * MS) for s, e in spells]
    drift = _walk(rng, w.duration_ns // S, 0.955, 0.995)

    def entries(t: int) -> int:
        if any(s <= t < e for s, e in full):
            return _GC_THRESH3
        return int(drift[_second(w, t)] * _GC_THRESH3)

    start = _arp_start(rng)
    k = _Kernel(
        {
            "ct.insert_failed": rng.randrange(0, 40),
            "ct.drop": rng.randrange(0, 100),
            "ct.early_drop": 0,
            "ct.clash_resolve": rng.randrange(500, 5000),
            "ct.invalid": rng.randrange(10, 400),
            "ct.search_restart": rng.randrange(0, 2000),
            **start,
            "arp.table_fulls": rng.randrange(1_000, 50_000),  # it has overflowed before
        },
        lambda t: {
            "ct.count": 300 + _second(w, t) % 7 * 40,
            "ct.max": _CT_MAX,
            "arp.entries": entries(t),
        },
    )
    # Above gc_thresh2 the kernel runs a forced collection at least every 5 s.
    for at in range(w.start_ns + int(rng.uniform(1.0, 5.0) * S), w.end_ns, 5 * S):
        k.add(at, "arp.forced_gc_runs")
    for s, e in spells:
        # forced GC takes entries not updated for 5 s, now and then a gateway
        # entry of a watched target among them
        hit = rng.sample(w.targets, rng.randint(1, max(1, len(w.targets) - 1)))
        if rng.random() < 0.1:
            hit = []
        for target in hit:
            gone = s + rng.randrange(0, 300 * MS)
            back = max(gone + 300 * MS, e + rng.randrange(-200 * MS, 200 * MS))
            _evicted(w, k, target, gone, back)
        for t in range(s, e, 100 * MS):  # other hosts' entries cannot be made either
            n = _poisson(rng, 2.0)
            at = t + rng.randrange(0, 100 * MS)
            k.add(at, "arp.table_fulls", n)
            k.add(at, "arp.forced_gc_runs", n)
            k.add(at, "arp.unresolved_discards", _poisson(rng, 0.4))
    w.kernel = k


def _evicted(w: _World, k: _Kernel, target: str, gone: int, back: int) -> None:
    """``target``'s gateway entry removed at ``gone``, made again at ``back``:
    every send between fails (no neighbour), each a failed creation. Watch
    records the entry of a target's own namespace (not the host's next hop)."""
    for i in w.within(target, gone, back):
        w.fail(target, i, Outcome.ERROR)
        at = w.sends[target][i] + w.rng.randrange(5_000, 50_000)
        k.add(at, "arp.table_fulls")
        k.add(at, "arp.forced_gc_runs")
    if target == HOST:
        return
    w.evictions.setdefault(target, []).append((gone, back))
    unresolved = StateChange(StateKind.GATEWAY_UNRESOLVED, BRIDGE)
    answered = back + w.rng.randrange(200_000, 2 * MS)
    w.neigh(gone, target, NeighChange("DELETED", "", "STALE", BRIDGE_MAC))
    w.neigh(back, target, NeighChange("INCOMPLETE", "", "", ""))
    w.state(back, target, EventKind.STATE_ENTERED, unresolved)
    w.neigh(answered, target, NeighChange("REACHABLE", BRIDGE_MAC, "INCOMPLETE", ""))
    w.state(answered, target, EventKind.STATE_LEFT, unresolved)


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth; the means here are small)."""
    limit, k, p = math.exp(-mean), 0, 1.0
    for _ in range(10_000):
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
    return k


def _arp_start(rng: random.Random) -> dict[str, int]:
    return {
        "arp.table_fulls": 0,
        "arp.unresolved_discards": rng.randrange(0, 60),
        "arp.forced_gc_runs": rng.randrange(0, 800),
        "arp.res_failed": rng.randrange(0, 200),
    }


SCENARIOS: dict[str, Callable[[_World], None]] = {
    "conntrack-race": _conntrack_race,
    "conntrack-full": _conntrack_full,
    "neighbour-table-full": _neighbour_table_full,
}
"""Cause id -> the scenario that replays its published signature."""


# -- what watch would have written --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replay:
    """A scenario as watch would have recorded it, before it is written."""

    cause: str
    targets: tuple[str, ...]
    probes: list[ProbeResult]
    events: list[NetEvent]
    facts: list[tuple[str, str, str, dict[str, Any]]]
    """(netns, kind, subject, data), as the engine adds them."""
    seconds: float


def _schedule(rng: random.Random, start: int, rate: float, duration_ns: int) -> list[int]:
    """The worker's fixed schedule: slot k at start + k/rate, jittered by a
    tenth of the interval, never accumulating."""
    interval = S / rate
    n = int(duration_ns / interval)
    return sorted(
        start + int(k * interval + (rng.random() - 0.5) * 0.1 * interval) for k in range(n)
    )


def _neighbour_cycles(w: _World) -> None:
    """The gateway entry of a probing namespace goes STALE after its reachable
    time, and a unicast probe confirms it again 5 s later (UDP never confirms
    it): the neighbour events every watch records (none while it is gone)."""
    for target in w.containers:
        gone = w.evictions.get(target, [])
        t = w.start_ns + int(w.rng.uniform(5.0, 30.0) * S)
        for _ in range(100_000):  # bounded: ends with the scenario
            if t >= w.end_ns:
                break
            probe = t + 5 * S + w.rng.randrange(0, 50 * MS)
            if not any(a - 5 * S <= t < b for a, b in gone):
                w.neigh(t, target, NeighChange("STALE", BRIDGE_MAC, "REACHABLE", BRIDGE_MAC))
                if probe < w.end_ns:
                    w.neigh(probe, target, NeighChange("PROBE", BRIDGE_MAC, "STALE", BRIDGE_MAC))
                    confirmed = probe + w.rng.randrange(100_000, 800_000)
                    w.neigh(
                        confirmed, target, NeighChange("REACHABLE", BRIDGE_MAC, "PROBE", BRIDGE_MAC)
                    )
            t = probe + int(w.rng.uniform(15.0, 45.0) * S)


def _counter_events(w: _World) -> list[NetEvent]:
    """The host namespace's samples through the sampler's own diff."""
    assert w.kernel is not None
    lag = [w.rng.randrange(200_000, 4 * MS) for _ in range(w.duration_ns // _SAMPLE_NS + 2)]
    times = [w.start_ns + k * _SAMPLE_NS + lag[k] for k in range(len(lag))]
    load = _load(w)
    diff = CounterDiff()
    out: list[NetEvent] = []
    last: int | None = None
    for t, values in w.kernel.readings(times):
        tx, rx = load(t)
        values[f"link.{UPLINK}.tx_packets"] = tx
        values[f"link.{UPLINK}.rx_packets"] = rx
        seconds = (t - last) / S if last is not None else 0.0
        last = t
        sample = diff.update(values, seconds)
        if sample is not None:
            out.append(NetEvent(t, _mono(t), HOST, EventKind.COUNTERS, "", "", sample))
    return out


def _load(w: _World) -> Callable[[int], tuple[int, int]]:
    """The uplink's packet counts at an instant: every query that got out, and
    its answer, on top of the host's other traffic."""
    out: list[int] = []
    for target in w.targets:
        out += [
            t for t, o in zip(w.sends[target], w.outcomes[target], strict=True) if o is Outcome.OK
        ]
    out.sort()
    base_tx, base_rx = w.rng.randrange(10**6, 10**8), w.rng.randrange(10**6, 10**8)

    def at(t: int) -> tuple[int, int]:
        n = bisect.bisect_right(out, t)
        background = (t - w.start_ns) // (400 * MS)  # a few packets a second of its own
        return base_tx + n + background, base_rx + n + background

    return at


def build(cause: str, opts: LabOptions, seed: int) -> Replay:
    """The scenario of ``cause`` for ``opts`` (pure: the same seed, the same replay)."""
    scenario = SCENARIOS.get(cause)
    if scenario is None:
        raise InvalidArgument(f"--fault {cause}: no recorded scenario replays it")
    rng = random.Random(f"{cause}:{seed}")
    seconds = replay_seconds(opts.duration)
    duration_ns = int(seconds * S)
    containers = tuple(f"netns:replay-c{i}" for i in range(opts.containers))
    sends = {
        t: _schedule(
            rng, REPLAY_START_NS + rng.randrange(100 * MS, 300 * MS), opts.rate, duration_ns
        )
        for t in (*containers, HOST)
    }
    w = _World(rng, opts.rate, duration_ns, containers, sends)
    w.outcomes = {t: [Outcome.OK] * len(times) for t, times in sends.items()}
    scenario(w)
    _neighbour_cycles(w)
    events = sorted([*w.events, *_counter_events(w)], key=lambda e: e.wall_ns)
    probes = []
    for target in w.targets:
        nearby = target != HOST  # through the bridge and NAT: a little slower
        for sent, outcome in zip(w.sends[target], w.outcomes[target], strict=True):
            latency = None
            if outcome is Outcome.OK:
                median = 450_000 if nearby else 300_000
                latency = int(median * math.exp(rng.gauss(0.0, 0.35)))
            answer = DNS_ANSWER if outcome is Outcome.OK else ""
            probes.append(
                ProbeResult(
                    sent, _mono(sent), target, PROBE, UPLINK_UP_ADDR, outcome, latency, answer
                )
            )
    probes.sort(key=lambda p: p.wall_ns)
    return Replay(cause, w.targets, probes, events, _facts(w), seconds)


def _facts(w: _World) -> list[tuple[str, str, str, dict[str, Any]]]:
    ports = tuple(f"veth{i}" for i in range(len(w.containers)))
    bridge = {
        "name": BRIDGE,
        "netns": HOST,
        "mac": BRIDGE_MAC,
        "addr_assign_type": 3,  # set: the container engine gives its bridge a MAC
        "pinned": True,
        "ports": list(ports),
        "arp_notify": 0,
    }
    facts: list[tuple[str, str, str, dict[str, Any]]] = [
        (HOST, "bridge", BRIDGE, {"when": "start", **bridge}),
        (HOST, "host", "", {"netns": None, "control": HOST, "found": True}),
    ]
    for target, port in zip(w.containers, ports, strict=True):
        path = {
            "target": target,
            "veth": "eth0",
            "peer": port,
            "bridge": BRIDGE,
            "subnet": SUBNET,
            "gateway": BRIDGE_ADDR,
        }
        facts.append((target, "path", target, path))
    facts.append((HOST, "bridge", BRIDGE, {"when": "end", **bridge}))
    return facts


def write(data: Replay, store_path: Path, args: dict[str, Any]) -> int:
    """Append ``data`` to the store as one run, through the store's own API."""
    with Store(store_path, create=True) as store:
        run = store.begin_run(f"lab replay {data.cause}", list(data.targets), args)
        end_fact = data.facts[-1]
        for netns, kind, subject, fact in data.facts[:-1]:
            store.add_fact(run, netns, kind, subject, fact)
        writer = StoreWriter(store_path, run)
        try:
            for chunk in range(0, len(data.probes), 50_000):
                writer.put_probes(data.probes[chunk : chunk + 50_000])
            for ev in data.events:
                writer.put_event(ev)
        finally:
            writer.close()
        store.add_fact(run, *end_fact)
        store.end_run(run)
    return run


def replay(spec: FaultSpec, opts: LabOptions, store_path: Path, seed: int) -> CaseResult:
    """Write the scenario of ``spec`` into ``store_path`` and summarise it as
    ``lab run`` summarises a live case, marked as a replay."""
    data = build(spec.id, opts, seed)
    note = replay_note(spec.id, spec.recorded)
    args = {
        "lab": opts.case_name,
        "engine": "recorded",
        "churn": "none",
        "fault": spec.id,
        "fixed": False,
        "seed": seed,
        "bridge": BRIDGE,
        "replayed": True,
        "recorded": spec.recorded,
        "note": note,
        "probes": [PROBE],
        "rate": opts.rate,
        "timeout": opts.timeout,
        "host_netns": None,
        "control": HOST,
    }
    run = write(data, store_path, args)
    with Store(store_path) as store:
        result = summarize_case(
            opts.case_name,
            store.probe_columns(runs=[run]),
            {k: s for k, s in store.series().items() if s.target != HOST},
            store.events(runs=[run]),
            BRIDGE,
            churn_cycles=0,
            seconds=data.seconds,
        )
    return replace(
        result,
        store=str(store_path),
        run_id=run,
        recorded=spec.recorded,
        note=note,
        extra={"seed": seed, "engine": "recorded", "replayed": True},
    )
