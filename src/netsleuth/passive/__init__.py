"""Passive DNS: every real query crossing the host's bridges, matched with
its answer, stored as one result per query (``watch --passive``).

Data flows: :mod:`~netsleuth.passive.ring` (AF_PACKET sockets with a
TPACKET_V3 ring and a BPF filter that admits only DNS, in the namespace
holding the bridges) → :mod:`~netsleuth.passive.wire` (the fields a query
is matched by, pure) → :mod:`~netsleuth.passive.matcher` (queries with their
answers on the bridge, their NATed copies on the uplink, timeouts; pure) →
:mod:`~netsleuth.passive.source` (the thread that owns them, names clients
through :mod:`~netsleuth.passive.names`, and hands the engine
:class:`~netsleuth.model.ProbeResult` rows whose probe text starts with
``passive:``). ``report`` reads them like probe series and says which
figures came from real traffic (:func:`is_passive`).
"""

from __future__ import annotations

__all__ = ["PASSIVE_PREFIX", "is_passive"]

PASSIVE_PREFIX = "passive:"
"""The probe text of every series of real queries starts with it."""


def is_passive(probe: str) -> bool:
    """Did this series come from real traffic (``watch --passive``)?"""
    return probe.startswith(PASSIVE_PREFIX)
