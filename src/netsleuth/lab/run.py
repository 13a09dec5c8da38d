"""Run lab cases: build the lab, start churn (and faults), drive the watch
engine against the containers, and summarise what the store recorded.

:func:`lab_session` builds a lab with its probing targets — veth
"containers" (namespaces), or with ``engine="docker"`` a throwaway dockerd on
the lab bridge with a real probe container — and keeps it for as many
phases as needed (the demo watches twice). :func:`watch_phase` is one
phase; :func:`run_case` is one case; :func:`compare` runs the unpinned,
pinned (and arp_notify) cases with identical churn and duration.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from netsleuth.errors import InvalidArgument
from netsleuth.lab.churn import Churn
from netsleuth.lab.faults import FaultContext, FaultSpec, fault_spec
from netsleuth.lab.summary import CaseResult, summarize_case
from netsleuth.lab.topology import LabConfig, LabTopology, build_lab
from netsleuth.netns import netns_path
from netsleuth.store import Store
from netsleuth.watch import LiveStats, WatchConfig, WatchEngine

__all__ = [
    "CASES",
    "LabOptions",
    "LabSession",
    "Progress",
    "compare",
    "lab_session",
    "run_case",
    "watch_phase",
]

CaseName = Literal["unpinned", "pinned", "arp_notify"]
CASES: tuple[CaseName, ...] = ("unpinned", "pinned", "arp_notify")

# (case name, elapsed s, planned s, stats) -> None
Progress = Callable[[str, float, float, LiveStats], None]

CHURN_DELAY = 1.0  # containers are up and probing before the first port joins


@dataclass(frozen=True, slots=True)
class LabOptions:
    pin_mac: bool = False
    arp_notify: bool = False
    engine: Literal["veth", "docker"] = "veth"
    churn: Literal["veth", "none"] | None = None
    """None: the churn runs when the fault is the flap itself (or no fault)."""
    churn_mac: Literal["random", "low"] | None = None
    """None: a new lower MAC each cycle with ``--fault bridge-mac-flap`` on veth
    (each cycle an outage), else random like the kernel's."""
    containers: int = 1
    duration: float = 30.0
    rate: float = 20.0
    timeout: float = 1.0
    t_in: float = 2.0
    t_out: float = 1.0
    fault: str = "none"
    """A cause id of :data:`netsleuth.lab.faults.FAULTS` (or an alias), or none."""
    fixed: bool = False
    """Apply the fault's fix first (``lab compare`` of a fault)."""
    loss_percent: int = 5
    run_id: str | None = None
    seed: int | None = None
    store: Path | None = None  # keep the watch store here; default: a temporary file

    def validate(self) -> None:
        spec = fault_spec(self.fault)  # raises for an unknown id
        if spec is not None and spec.recorded and self.engine == "docker":
            raise InvalidArgument(f"--fault {spec.id} is replayed from a recording: no --engine")
        if not 1 <= self.containers <= 50:
            raise InvalidArgument(f"--containers {self.containers}: use 1 to 50")
        if not 0 < self.duration <= 24 * 3600:
            raise InvalidArgument(f"--duration {self.duration}: use 0 < S <= 86400")
        if not 0 < self.rate <= 100_000:
            raise InvalidArgument(f"--rate {self.rate}: use 0 < R <= 100000")
        if self.t_in <= 0 or self.t_out < 0:
            raise InvalidArgument("--t-in must be > 0 and --t-out >= 0")
        if not 0 < self.loss_percent <= 100:
            raise InvalidArgument(f"--loss {self.loss_percent}: use 1 to 100 (%)")
        if self.engine == "docker" and self.churn_mac == "low":
            raise InvalidArgument(
                "--churn-mac low needs --engine veth: Docker picks its containers' MACs itself"
            )

    def for_case(self, case: CaseName) -> LabOptions:
        return replace(self, pin_mac=case == "pinned", arp_notify=case == "arp_notify")

    @property
    def fault_spec(self) -> FaultSpec | None:
        return fault_spec(self.fault)

    @property
    def churn_mac_kind(self) -> Literal["random", "low"]:
        if self.churn_mac is not None:
            return self.churn_mac
        spec = self.fault_spec
        flap = spec is not None and spec.churn
        return "low" if flap and self.engine == "veth" else "random"

    @property
    def churn_kind(self) -> Literal["veth", "none"]:
        if self.churn is not None:
            return self.churn
        spec = self.fault_spec
        return "veth" if spec is None or spec.churn else "none"

    @property
    def case_name(self) -> str:
        """unpinned / pinned / arp_notify for the flap; the fault's id (and
        ``fixed``) for any other fault."""
        spec = self.fault_spec
        if spec is not None and not spec.churn:
            return f"{spec.id} fixed" if self.fixed else spec.id
        if self.pin_mac:
            return "pinned"
        return "arp_notify" if self.arp_notify else "unpinned"


@dataclass(frozen=True, slots=True)
class LabSession:
    """A built lab and where to probe from."""

    topo: LabTopology
    targets: tuple[str, ...]  # the probing containers, then "host" as the control
    probe_paths: tuple[str, ...]  # their network namespaces
    docker_hosts: tuple[str, ...] = ()

    @property
    def engine(self) -> str:
        return "docker" if self.docker_hosts else "veth"


@contextlib.contextmanager
def lab_session(opts: LabOptions, seed: int) -> Iterator[LabSession]:
    docker = opts.engine == "docker"
    config = LabConfig(
        containers=0 if docker else opts.containers,
        pin_mac=opts.pin_mac,
        arp_notify=opts.arp_notify,
        run_id=opts.run_id,
        seed=seed,
    )
    with build_lab(config) as topo:
        if not docker:
            yield LabSession(
                topo,
                (*(f"netns:{ns}" for ns in topo.container_ns), "host"),
                tuple(str(netns_path(ns)) for ns in topo.container_ns),
            )
            return
        from netsleuth.lab.docker_engine import DockerEngine  # only Docker labs need it

        with DockerEngine(topo) as engine:
            probe = engine.start_probe_container()
            yield LabSession(topo, (probe.target, "host"), (probe.netns_path,), (engine.host,))


@contextlib.contextmanager
def _store_path(opts: LabOptions, case: str) -> Iterator[Path]:
    if opts.store is not None:
        yield opts.store
        return
    with tempfile.TemporaryDirectory(prefix="netsleuth-lab-") as tmp:
        yield Path(tmp) / f"{case}.sqlite"


class _Cycles(Protocol):
    @property
    def cycles(self) -> int: ...


def _disturbances(
    stack: contextlib.ExitStack, session: LabSession, opts: LabOptions, seed: int
) -> _Cycles | None:
    """Start churn and faults on ``stack``; return the churn (for its count).

    Churn starts :data:`CHURN_DELAY` after the probes, as on a CI host where
    containers run before builds come and go: the container first learns
    its gateway's MAC with no churn port on the bridge.
    """
    topo = session.topo
    churn: _Cycles | None = None
    if opts.churn_kind == "veth" and session.engine == "docker":
        from netsleuth.lab.docker_engine import DockerChurn

        churn = stack.enter_context(
            DockerChurn(
                topo,
                t_in=opts.t_in,
                t_out=opts.t_out,
                duration=opts.duration,
                seed=seed,
                docker_host=session.docker_hosts[0],
            )
        )
    elif opts.churn_kind == "veth":
        churn = stack.enter_context(
            Churn(
                topo,
                mac=opts.churn_mac_kind,
                t_in=opts.t_in,
                t_out=opts.t_out,
                duration=opts.duration,
                seed=seed,
                delay=CHURN_DELAY,
            )
        )
    spec = opts.fault_spec
    if spec is not None and spec.start is not None:
        ctx = FaultContext(topo, seed, opts.duration, opts.loss_percent, opts.fixed)
        stack.enter_context(spec.start(ctx))
    return churn


def _probes(opts: LabOptions, topo: LabTopology) -> tuple[str, ...]:
    spec = opts.fault_spec
    if spec is not None and spec.probes is not None:
        return spec.probes(topo)
    return (f"dns:{topo.dns_server}/{topo.dns_name}/A",)


def watch_phase(
    session: LabSession,
    opts: LabOptions,
    store_path: Path,
    name: str,
    seed: int,
    *,
    progress: Progress | None = None,
) -> CaseResult:
    """Churn (and faults) for ``opts.duration`` on a built lab while the watch
    engine probes from its containers and the host; summarised from the store
    over the containers (the host is the control)."""
    topo = session.topo
    started = time.monotonic()
    first_probe: list[float] = []

    def tick(stats: LiveStats, elapsed: float) -> None:
        if not first_probe and stats.attempts:
            first_probe.append(time.monotonic() - started)
        if progress is not None:
            progress(name, elapsed, opts.duration, stats)

    engine = WatchEngine(
        WatchConfig(
            targets=session.targets,
            probes=_probes(opts, topo),
            rate=opts.rate,
            timeout=opts.timeout,
            duration=opts.duration,
            host_netns=topo.host_ns,
            docker_hosts=session.docker_hosts,
            label=f"lab {name}",
            args={
                "lab": name,
                "engine": session.engine,
                "churn": opts.churn_kind,
                "churn_mac": opts.churn_mac_kind,
                "fault": spec.id if (spec := opts.fault_spec) else "none",
                "fixed": opts.fixed,
                "seed": seed,
                "bridge": topo.bridge,
            },
        ),
        store_path,
    )
    with contextlib.ExitStack() as stack:
        churn = _disturbances(stack, session, opts, seed)
        summary = engine.run(on_tick=tick, tick_interval=0.1)
    with Store(store_path) as store:
        result = summarize_case(
            name,
            store.probe_columns(runs=[summary.run_id]),
            {k: s for k, s in store.series().items() if s.target != "host"},
            store.events(runs=[summary.run_id]),
            topo.bridge,
            churn_cycles=churn.cycles if churn else 0,
            seconds=summary.seconds,
        )
    return replace(
        result,
        first_probe_s=first_probe[0] if first_probe else None,
        store=str(store_path),
        run_id=summary.run_id,
        lab_id=topo.run_id,
        extra={"worker": summary.worker_stats, "seed": seed, "engine": session.engine},
    )


def run_case(opts: LabOptions, progress: Progress | None = None) -> CaseResult:
    """Build the lab for one case, run it for ``opts.duration``, tear it down."""
    opts.validate()
    name = opts.case_name
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    spec = opts.fault_spec
    if spec is not None and spec.recorded:
        from netsleuth.lab.recorded import replay  # no namespaces: a recorded scenario

        with _store_path(opts, name) as store_path:
            result = replay(spec, opts, store_path, seed)
        return result if opts.store is not None else replace(result, store="")
    with _store_path(opts, name) as store_path, lab_session(opts, seed) as session:
        result = watch_phase(session, opts, store_path, name, seed, progress=progress)
    return result if opts.store is not None else replace(result, store="")


def compare(
    opts: LabOptions, *, with_arp_notify: bool = False, progress: Progress | None = None
) -> list[CaseResult]:
    """The unpinned and pinned cases (and arp_notify), same churn, same seed;
    for another fault, the fault as it is and with its fix applied."""
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    spec = opts.fault_spec
    if spec is not None and not spec.churn:
        if not spec.fixable:
            raise InvalidArgument(
                f"--fault {spec.id} has no fix the lab can apply, so there is nothing to "
                f"compare; run `netsleuth lab run --fault {spec.id}`"
            )
        return [
            run_case(replace(opts, fixed=fixed, seed=seed, run_id=None), progress)
            for fixed in (False, True)
        ]
    cases: list[CaseName] = ["unpinned", "pinned"]
    if with_arp_notify:
        cases.append("arp_notify")
    return [run_case(replace(opts.for_case(c), seed=seed, run_id=None), progress) for c in cases]
