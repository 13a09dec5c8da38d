"""The faults the lab reproduces: one per cause of the catalogue.

Each :class:`FaultSpec` is keyed by the cause id it reproduces (the JSON
contract of ``verdict.cause``), so ``lab run --fault ID`` followed by
``report`` must name ``ID``. A spec either starts a context manager on a
built lab (:attr:`FaultSpec.start`: it sets things up on enter, may run a
loop in a thread, and leaves nothing behind that the lab's teardown does not
remove), or, for a cause that needs a machine-wide setting this kernel does
not keep per namespace, says why (:attr:`FaultSpec.recorded`) and is
replayed from a recorded scenario instead (:mod:`netsleuth.lab.recorded`).

This module stays light (``--help`` lists the ids): each fault's module is
imported only when the fault starts.

Old names stay as aliases: ``nat-flap`` is ``nat-missing``, ``upstream-loss``
is ``upstream-dns``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netsleuth.errors import InvalidArgument

if TYPE_CHECKING:
    from netsleuth.lab.topology import LabTopology

__all__ = [
    "ALIASES",
    "FAULTS",
    "FaultContext",
    "FaultSpec",
    "fault_help",
    "fault_ids",
    "fault_spec",
]


@dataclass(frozen=True, slots=True)
class FaultContext:
    """What a fault gets to work on."""

    topo: LabTopology
    seed: int
    duration: float
    loss_percent: int = 5
    fixed: bool = False
    """``lab compare``: the same fault with the cause's fix applied first."""


FaultStart = Callable[[FaultContext], AbstractContextManager[object]]


@dataclass(frozen=True, slots=True)
class FaultSpec:
    id: str
    """The cause id (:data:`netsleuth.causes.CAUSES`) it reproduces."""
    summary: str
    """One line for ``--help``: what the lab does."""
    start: FaultStart | None = None
    churn: bool = False
    """Runs with the bridge churn (only the flap itself)."""
    probes: Callable[[LabTopology], tuple[str, ...]] | None = None
    """Probe specs replacing the default one DNS query to the lab resolver."""
    fixable: bool = False
    """``lab compare`` can run it once more with the fix applied."""
    recorded: str = ""
    """Why it is replayed from a recording instead of built (empty: built)."""


def _nat_flap(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.firewall import NatFlap

    return NatFlap(ctx.topo)


def _upstream_loss(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.firewall import UpstreamLoss

    return UpstreamLoss(ctx.topo, ctx.loss_percent)


def _forward_reload(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.firewall import ForwardReload

    return ForwardReload(ctx.topo, ctx.duration)


def _rogue_gateway(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.neighbours import RogueGateway

    return RogueGateway(ctx.topo, ctx.duration, ctx.seed)


def _address_loss(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.uplink import AddressLoss

    return AddressLoss(ctx.topo, ctx.duration)


def _upstream_rate_limit(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.load import UpstreamRateLimit

    return UpstreamRateLimit(ctx.topo, ctx.seed, ctx.duration)


def _resolver_overload(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.load import ResolverOverload

    return ResolverOverload(ctx.topo, ctx.seed, ctx.duration)


def _stale_conntrack(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.stale import StaleConntrackNat

    return StaleConntrackNat(ctx.topo, ctx.duration, ctx.seed)


def _local_resolver_probe(topo: LabTopology) -> tuple[str, ...]:
    """Probes ask the local forwarder on the bridge address, as the host's clients would."""
    return (f"dns:{topo.gateway}/{topo.dns_name}/A",)


def _rp_filter(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.paths import RpFilterFlap

    return RpFilterFlap(ctx.topo, ctx.seed, fixed=ctx.fixed)


def _mtu_blackhole(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.paths import MtuBlackhole

    return MtuBlackhole(ctx.topo)


def _mtu_probes(topo: LabTopology) -> tuple[str, ...]:
    from netsleuth.lab.faults.paths import mtu_probes

    return mtu_probes(topo)


def _resolver_unreachable(ctx: FaultContext) -> AbstractContextManager[object]:
    from netsleuth.lab.faults.paths import ResolverUnreachable

    return ResolverUnreachable(ctx.topo)


def _resolver_probes(topo: LabTopology) -> tuple[str, ...]:
    from netsleuth.lab.faults.paths import resolver_probes

    return resolver_probes(topo)


FAULTS: dict[str, FaultSpec] = {
    spec.id: spec
    for spec in (
        FaultSpec(
            "bridge-mac-flap",
            "ports with ever lower MACs join and leave an unpinned bridge (--pin-mac fixes it)",
            churn=True,
            fixable=True,
        ),
        FaultSpec(
            "nat-missing",
            "the masquerade rule deleted for 2 s every 6 s",
            _nat_flap,
        ),
        FaultSpec(
            "upstream-dns",
            "random loss of DNS packets at the resolver (see --loss)",
            _upstream_loss,
        ),
        FaultSpec(
            "forward-blocked",
            "a firewall reload leaves a forward chain with a drop policy for 2.5 s every 7 s",
            _forward_reload,
        ),
        FaultSpec(
            "gateway-arp-conflict",
            "a rogue peer on the bridge claims the gateway's IP by gratuitous ARP every 10 s",
            _rogue_gateway,
        ),
        FaultSpec(
            "address-lost",
            "the uplink's address (and its route) removed for 2.5 s every 7 s",
            _address_loss,
        ),
        FaultSpec(
            "upstream-rate-limit",
            "the resolver admits 200 DNS packets/s; a build namespace bursts 800 queries/s "
            "for 3 s every ~8 s",
            _upstream_rate_limit,
        ),
        FaultSpec(
            "resolver-overload",
            "probes ask a slow local forwarder (small receive buffer); builds burst 1500 "
            "queries/s at it for 2 s every ~6 s",
            _resolver_overload,
            probes=_local_resolver_probe,
        ),
        FaultSpec(
            "rp-filter",
            "replies to NATed queries come back by a second link (strict rp_filter), 0.25 s in 3-6",
            _rp_filter,
            fixable=True,
        ),
        FaultSpec(
            "mtu-blackhole",
            "bridge MTU 1000, ICMP frag-needed dropped upstream; a small and a large EDNS probe",
            _mtu_blackhole,
            probes=_mtu_probes,
        ),
        FaultSpec(
            "resolver-unreachable",
            "the containers' resolv.conf names 127.0.0.53; probes use each target's resolv.conf",
            _resolver_unreachable,
            probes=_resolver_probes,
        ),
        FaultSpec(
            "stale-conntrack-nat",
            "br_netfilter on, a bystander port, the bridge MAC flapped 2 s every 12 s: "
            "flooded queries leave un-NATed entries that later ones reuse",
            _stale_conntrack,
        ),
        FaultSpec(
            "conntrack-race",
            "replayed: single lost queries while ct.insert_failed rises in the NATing namespace",
            recorded=(
                "this kernel (>= 5.x) resolves the clash of parallel packets of one flow, so "
                "the insert race cannot be forced at will in a lab"
            ),
        ),
        FaultSpec(
            "conntrack-full",
            "replayed: bursts of dropped new flows while ct.count is at ct.max",
            recorded=(
                "nf_conntrack_max is read-only inside a namespace, and the machine's own "
                "must not be changed"
            ),
        ),
        FaultSpec(
            "neighbour-table-full",
            "replayed: sends failing while arp.table_fulls rises at gc_thresh3",
            recorded=(
                "the neighbour table is machine-wide: its gc_thresh limits and "
                "/proc/net/stat/arp_cache exist only in the initial namespace, whose "
                "settings must not be changed"
            ),
        ),
    )
}
"""Cause id -> how the lab reproduces it."""

ALIASES = {"nat-flap": "nat-missing", "upstream-loss": "upstream-dns"}


def fault_ids() -> list[str]:
    """Every name ``--fault`` accepts: ``none``, the cause ids, the aliases."""
    return ["none", *FAULTS, *ALIASES]


def fault_help() -> str:
    """``--fault`` choices, one per line, for ``--help``."""
    lines = [f"  {spec.id:<22} {spec.summary}" for spec in FAULTS.values()]
    lines += [f"  {old:<22} the same as {new}" for old, new in ALIASES.items()]
    return "\n".join(lines)


def fault_spec(name: str) -> FaultSpec | None:
    """The spec for a ``--fault`` name (None for ``none``)."""
    if name == "none":
        return None
    spec = FAULTS.get(ALIASES.get(name, name))
    if spec is None:
        raise InvalidArgument(f"--fault {name}: unknown; use one of {', '.join(fault_ids())}")
    return spec
