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


FAULTS: dict[str, FaultSpec] = {
    spec.id: spec
    for spec in (
        FaultSpec(
            "bridge-mac-flap",
            "ports join and leave an unpinned bridge (the churn; pin it with --pin-mac)",
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
