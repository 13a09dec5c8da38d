"""Synthetic stores modelled on the measured behaviour (for tests, benchmarks
and trying the report without root).

Each scenario probes from the host control and from namespaces at a fixed
rate and produces the events ``watch`` would record. The mechanisms follow
what was measured on real bridges: an unpinned bridge takes a joining port's
lower MAC and gives it back when the port leaves; namespaces whose gateway
entry holds the vanished MAC lose every query from 0-50 ms after the port
left until their entry recovers. Scenarios:

- ``flap``: unpinned bridge with port churn; outages after ports leave.
- ``pinned``: the same churn on a pinned bridge; no MAC change, no outage.
- ``quiet``: no churn, no outage.
- ``upstream-loss``: unpinned bridge with churn and MAC changes, but queries
  are lost at random upstream, in every target (the host too).
- ``nat-flap``: unpinned churning bridge, but the outages come from the NAT
  rule being removed now and then (recorded as firewall events, unless
  ``record_firewall`` is False).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from netsleuth.model import (
    EventDetail,
    EventKind,
    FirewallChange,
    InvariantDetail,
    MacChange,
    NetEvent,
    Outcome,
    PortDetail,
    ProbeResult,
)
from netsleuth.store import ProbeBatch, Store, StoreWriter

__all__ = ["SCENARIOS", "Synthetic", "generate", "write_store"]

SCENARIOS = ("flap", "pinned", "quiet", "upstream-loss", "nat-flap")
BRIDGE = "lbr0"
SERVER = "198.18.255.2"
PROBE = f"dns:{SERVER}/www.lab.test/A"
_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Synthetic:
    probes: list[ProbeResult]
    events: list[NetEvent]
    facts: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    targets: tuple[str, ...] = ()
    batch: ProbeBatch | None = None


def _ev(
    t: int, netns: str, ev_kind: EventKind, ifname: str, subject: str, *, detail: EventDetail
) -> NetEvent:
    return NetEvent(t, t, netns, ev_kind, ifname, subject, detail)


def generate(
    scenario: str,
    *,
    seconds: float = 60.0,
    rate: float = 20.0,
    namespaces: int = 2,
    start_ns: int = 1_800_000_000 * _S,
    seed: int = 1,
    loss: float = 0.03,
    record_firewall: bool = True,
    cycle_s: float = 3.0,
    as_batch: bool = False,
) -> Synthetic:
    """Probe results, events and bridge facts of one scenario (deterministic per seed).

    ``cycle_s``: the period of the port churn (a port is joined for two
    thirds of it). ``as_batch``: the probes as one :class:`ProbeBatch` of
    numpy columns in ``batch`` (``probes`` left empty): how stores of tens of
    millions of attempts are built in seconds.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    rnd = random.Random(seed)
    end_ns = start_ns + int(seconds * _S)
    spaces = [f"netns:lab{i}" for i in range(namespaces)]
    targets = ("host", *spaces)
    pinned = scenario == "pinned"
    churn = scenario != "quiet"
    events: list[NetEvent] = []
    down: dict[str, list[tuple[int, int]]] = {t: [] for t in targets}
    bridge_mac, low_mac = "02:00:00:00:10:00", "02:00:00:00:00:01"

    # port churn: a port with a lower MAC joins for 2 s, leaves for 1 s
    t = start_ns + _S // 2
    cycle = 0
    while churn and t < end_ns:
        port = f"lv{cycle}"
        events.append(
            _ev(t, "host", EventKind.PORT_JOINED, port, BRIDGE, detail=PortDetail(low_mac))
        )
        if not pinned:
            events.append(
                _ev(
                    t + 1_000_000,
                    "host",
                    EventKind.MAC_CHANGED,
                    BRIDGE,
                    "",
                    detail=MacChange(
                        old=bridge_mac, new=low_mac, kind="bridge", addr_assign_type=1
                    ),
                )
            )
        left = t + int(cycle_s * _S * 2 / 3)
        if left >= end_ns:
            break
        events.append(
            _ev(left, "host", EventKind.PORT_LEFT, port, BRIDGE, detail=PortDetail(low_mac))
        )
        if not pinned:
            events.append(
                _ev(
                    left + 500_000,
                    "host",
                    EventKind.MAC_CHANGED,
                    BRIDGE,
                    "",
                    detail=MacChange(
                        old=low_mac, new=bridge_mac, kind="bridge", addr_assign_type=1
                    ),
                )
            )
        if scenario == "flap":
            for ns in spaces:
                onset = left + rnd.randrange(0, 50_000_000)
                end = onset + _S
                down[ns].append((onset, end))
                events.append(
                    _ev(
                        onset,
                        ns,
                        EventKind.INVARIANT_VIOLATED,
                        "",
                        "198.18.0.1",
                        detail=InvariantDetail(
                            gateway_mac=low_mac,
                            neigh_mac=low_mac,
                            bridge=BRIDGE,
                            owned_by_port=False,
                        ),
                    )
                )
                events.append(
                    _ev(
                        end,
                        ns,
                        EventKind.INVARIANT_RECOVERED,
                        "",
                        "198.18.0.1",
                        detail=InvariantDetail(
                            gateway_mac=bridge_mac,
                            neigh_mac=bridge_mac,
                            bridge=BRIDGE,
                            owned_by_port=True,
                        ),
                    )
                )
        t += int(cycle_s * _S)
        cycle += 1

    if scenario == "nat-flap":
        t = start_ns + 2 * _S
        while t < end_ns:
            gone = t + 1_500_000_000
            if record_firewall:
                events.append(
                    _ev(
                        t,
                        "host",
                        EventKind.FIREWALL_CHANGED,
                        "",
                        "",
                        detail=FirewallChange(summary="masquerade removed", nat=True),
                    )
                )
                events.append(
                    _ev(
                        gone,
                        "host",
                        EventKind.FIREWALL_CHANGED,
                        "",
                        "",
                        detail=FirewallChange(summary="masquerade added", nat=True),
                    )
                )
            for ns in spaces:
                down[ns].append((t + rnd.randrange(0, 30_000_000), gone))
            t += 7 * _S + rnd.randrange(0, _S)

    events.sort(key=lambda e: e.wall_ns)
    step = int(_S / rate)
    facts = _facts(bridge_mac, pinned)
    if as_batch:
        batch = _batch(targets, down, scenario, rnd, start_ns, end_ns, step, loss)
        return Synthetic([], events, facts, targets, batch)
    probes: list[ProbeResult] = []
    for k, target in enumerate(targets):
        spans = down[target]
        i = 0
        t = start_ns + k * step // len(targets)
        while t < end_ns:
            while i < len(spans) and spans[i][1] < t:
                i += 1
            failed = i < len(spans) and spans[i][0] <= t <= spans[i][1]
            if scenario == "upstream-loss" and rnd.random() < loss:
                failed = True
            outcome = Outcome.TIMEOUT if failed else Outcome.OK
            latency = None if failed else 300_000 + rnd.randrange(0, 200_000)
            probes.append(
                ProbeResult(
                    t,
                    t,
                    target,
                    PROBE,
                    SERVER,
                    outcome,
                    latency,
                    "198.18.255.10" if not failed else "",
                )
            )
            t += step
    probes.sort(key=lambda p: p.wall_ns)
    return Synthetic(probes, events, facts, targets)


def _facts(bridge_mac: str, pinned: bool) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (
            "host",
            "bridge",
            BRIDGE,
            {
                "mac": bridge_mac,
                "addr_assign_type": 3 if pinned else 1,
                "ports": ["veth-h0", "veth-h1"],
                "arp_notify": 0,
                "pinned": pinned,
            },
        )
    ]


def _batch(  # noqa: PLR0917 - the generator's state, handed on once
    targets: tuple[str, ...],
    down: dict[str, list[tuple[int, int]]],
    scenario: str,
    rnd: random.Random,
    start_ns: int,
    end_ns: int,
    step: int,
    loss: float,
) -> ProbeBatch:
    """The probes of :func:`generate` as numpy columns, sorted by wall time
    (the same mechanism: a target fails inside its down spans, and at random
    with ``upstream-loss``)."""
    gen = np.random.default_rng(rnd.randrange(2**32))
    parts = []
    for k, target in enumerate(targets):
        wall = np.arange(start_ns + k * step // len(targets), end_ns, step, dtype=np.int64)
        failed = np.zeros(wall.size, dtype=bool)
        spans = np.asarray(down[target], dtype=np.int64).reshape(-1, 2)
        if spans.size:
            # the last span that began at or before each attempt
            i = np.searchsorted(spans[:, 0], wall, side="right") - 1
            ok = i >= 0
            failed[ok] = wall[ok] <= spans[i[ok], 1]
        if scenario == "upstream-loss":
            failed |= gen.random(wall.size) < loss
        parts.append((np.full(wall.size, k, dtype=np.int64), wall, failed))
    series = np.concatenate([p[0] for p in parts])
    wall = np.concatenate([p[1] for p in parts])
    failed = np.concatenate([p[2] for p in parts])
    order = np.argsort(wall, kind="stable")
    series, wall, failed = series[order], wall[order], failed[order]
    latency = np.where(failed, -1, 300_000 + gen.integers(0, 200_000, wall.size))
    return ProbeBatch(
        keys=tuple((t, PROBE, SERVER) for t in targets),
        series=series,
        wall_ns=wall,
        mono_ns=wall.copy(),
        outcome=np.where(failed, int(Outcome.TIMEOUT), int(Outcome.OK)).astype(np.int8),
        latency_ns=latency.astype(np.int64),
        answer=np.where(failed, -1, 0).astype(np.int64),
        answers=("198.18.255.10",),
    )


def _pieces(batch: ProbeBatch, size: int) -> list[ProbeBatch]:
    return [
        ProbeBatch(
            batch.keys,
            batch.series[a : a + size],
            batch.wall_ns[a : a + size],
            batch.mono_ns[a : a + size],
            batch.outcome[a : a + size],
            batch.latency_ns[a : a + size],
            batch.answer[a : a + size],
            batch.answers,
        )
        for a in range(0, len(batch), size)
    ]


def write_store(path: str | Path, data: Synthetic, label: str = "synthetic") -> int:
    """Append ``data`` to the store at ``path`` as one run; returns the run id."""
    with Store(path, create=True) as store:
        run = store.begin_run(label, list(data.targets), {"synthetic": True})
        for netns, kind, subject, fact in data.facts:
            store.add_fact(run, netns, kind, subject, fact)
        writer = StoreWriter(path, run)
        try:
            for chunk in range(0, len(data.probes), 50_000):
                writer.put_probes(data.probes[chunk : chunk + 50_000])
            if data.batch is not None:
                for piece in _pieces(data.batch, 1 << 20):
                    writer.put_batch(piece)
            for ev in data.events:
                writer.put_event(ev)
        finally:
            writer.close()
        for netns, kind, subject, fact in data.facts:
            store.add_fact(run, netns, kind, subject, fact)
        store.end_run(run)
    return run
