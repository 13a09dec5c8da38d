"""Who sent a query: the client label of an address.

A query's client is named, first that applies: the Docker container holding
the address (``container:NAME``, through the Engine API of every
``--docker-host``), the named network namespace holding it
(``netns:NAME``, from ``ip netns``), else the address itself. The labels are
the ones ``watch --target`` gives, so a container's real queries and its
probes are reported under one target.

The table is built by :func:`docker_addresses` and :func:`netns_addresses`
(the I/O, injectable) and cached; an address not in it triggers a rebuild at
most every ``refresh_s`` seconds, and the whole table is rebuilt every
``max_age_s`` seconds so an address a new container reuses is renamed.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from netsleuth.passive.wire import address_text

__all__ = ["ClientNamer", "addresses_of_containers", "docker_addresses", "netns_addresses"]

Lookup = Callable[[], Mapping[str, str]]
"""Returns address text -> client label."""


def _usable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def addresses_of_containers(containers: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Pure: address -> ``container:NAME`` from containers' inspect data
    (``NetworkSettings``: the default network's address and every network's)."""
    out: dict[str, str] = {}
    for attrs in containers:
        name = str(attrs.get("Name") or "").lstrip("/")
        if not name:
            continue
        settings = attrs.get("NetworkSettings") or {}
        nets = [settings, *(settings.get("Networks") or {}).values()]
        for net in nets:
            for key in ("IPAddress", "GlobalIPv6Address"):
                address = str((net or {}).get(key) or "")
                if address and _usable(address):
                    out[address] = f"container:{name}"
    return out


def docker_addresses(docker_hosts: Sequence[str]) -> Lookup:
    """The running containers' addresses on every daemon (a daemon that does
    not answer adds none)."""

    def lookup() -> dict[str, str]:
        from netsleuth.docker.client import api_errors, connect

        out: dict[str, str] = {}
        for host in docker_hosts:
            try:
                client = connect(host, timeout=2)
            except api_errors():
                continue
            try:
                out.update(addresses_of_containers(c.attrs for c in client.containers.list()))
            except api_errors():
                pass
            finally:
                client.close()
        return out

    return lookup


def netns_addresses(host_path: str | Path | None, skip: Iterable[str] = ()) -> Lookup:
    """Every address of every named network namespace with a veth on a
    bridge of the host namespace (at ``host_path``; None: ours), but
    ``skip``: address -> ``netns:NAME``. Other namespaces may hold the same
    addresses (another host's lab, a container of another bridge): only a
    namespace whose id is the peer namespace of a bridge port there counts."""
    skipped = set(skip)

    def lookup() -> dict[str, str]:
        from netsleuth import netns
        from netsleuth.errors import NetsleuthError
        from netsleuth.netns import Links
        from netsleuth.netns.rtnl import dump_links, netns_id

        def attached() -> list[str]:
            peers = {
                link.netnsid for link in dump_links() if link.master and link.netnsid is not None
            }
            names = [n for n in netns.list_named() if n not in skipped]
            return [n for n in names if netns_id(str(netns.netns_path(n))) in peers]

        def read() -> list[str]:
            with Links() as links:
                return [a.address for a in links.addresses()]

        try:
            names = attached() if host_path is None else netns.run_in(host_path, attached)
        except (OSError, NetsleuthError):
            return {}
        out: dict[str, str] = {}
        for name in names:
            try:
                addresses = netns.run_in(netns.netns_path(name), read)
            except (OSError, NetsleuthError):
                continue  # gone meanwhile
            for address in addresses:
                if _usable(address):
                    out.setdefault(address, f"netns:{name}")
        return out

    return lookup


class ClientNamer:
    """Address (raw bytes) -> client label, cached (see the module docstring).
    ``lookups`` are asked in order; the first that knows an address names it."""

    def __init__(
        self,
        lookups: Sequence[Lookup],
        *,
        refresh_s: float = 2.0,
        max_age_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookups = list(lookups)
        self._refresh_s = refresh_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._table: dict[str, str] = {}
        self._cache: dict[bytes, str] = {}
        self._unknown: dict[bytes, str] = {}  # not in the table: their address text
        self._built = -float("inf")
        self.rebuilds = 0

    def label(self, raw: bytes) -> str:
        """The client label of ``raw``; called once per query, so a known
        address and a recently asked unknown one are each one look-up."""
        now = self._clock()
        if now - self._built > self._max_age_s:
            self._rebuild(now)
        name = self._cache.get(raw)
        if name is not None:
            return name
        text = self._unknown.get(raw)
        if text is not None and now - self._built <= self._refresh_s:
            return text  # not in the table as of the last rebuild, which was recent
        if text is None:
            text = address_text(raw)
        name = self._table.get(text)
        if name is None and now - self._built > self._refresh_s:
            self._rebuild(now)
            name = self._table.get(text)
        if name is None:
            self._unknown[raw] = text  # asked again (at most every refresh_s) later
            return text
        self._cache[raw] = name
        return name

    def _rebuild(self, now: float) -> None:
        table: dict[str, str] = {}
        for lookup in reversed(self._lookups):  # the first lookup wins
            table.update(lookup())
        self._table, self._cache, self._unknown, self._built = table, {}, {}, now
        self.rebuilds += 1
