"""``watch --passive``: the passive source as the watch engine starts it.

The engine hands over what it found (the host namespace's bridges and
uplinks, the bridges its targets' paths use); this decides what is watched
(:func:`~netsleuth.passive.source.choose_sides`), how clients are named
(Docker first, then named namespaces, see :mod:`netsleuth.passive.names`)
and opens the rings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from netsleuth.passive.names import ClientNamer, Lookup, docker_addresses, netns_addresses
from netsleuth.passive.source import PassiveSource, choose_sides

__all__ = ["FACT_KIND", "start_passive"]

FACT_KIND = "passive"
"""The store fact holding what the passive source watched and counted."""


def start_passive(
    given: Sequence[str],
    *,
    bridges: Sequence[str],
    path_bridges: Sequence[str],
    uplinks: Sequence[str],
    host_netns: str | None,
    host_path: str | Path | None,
    docker_hosts: Sequence[str],
    timeout_s: float,
) -> PassiveSource:
    """Open the rings and start the source's thread."""
    sides = choose_sides(given, path_bridges, bridges, uplinks)
    lookups: list[Lookup] = []
    if docker_hosts:
        lookups.append(docker_addresses(docker_hosts))
    lookups.append(netns_addresses(host_path, skip=[host_netns] if host_netns else []))
    return PassiveSource(sides, host_path, timeout_s=timeout_s, namer=ClientNamer(lookups)).start()
