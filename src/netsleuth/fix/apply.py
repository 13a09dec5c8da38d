"""Runtime changes through netlink and /proc/sys, in this or another namespace.

Each function reads the state first and changes nothing when it already is
as asked, so calling it twice is harmless. ``netns`` is anything
:meth:`netsleuth.netns.Namespace.of` takes: None (this namespace), a name,
a path, or a Namespace; the work runs inside it through the handle.
"""

from __future__ import annotations

import errno
from pathlib import Path

from netsleuth.audit.readers import bridge_mac_state
from netsleuth.errors import InvalidArgument, NotPermitted
from netsleuth.fix.mac import normalize_mac
from netsleuth.netns import Links, Namespace

__all__ = ["pin_bridge_mac", "set_link_mtu", "set_sysctl"]

NetnsSpec = Namespace | str | Path | None


def _index(links: Links, name: str, want_kind: str | None = None) -> int:
    index = links.index(name)
    if want_kind is not None:
        kind = links.link(index).kind
        if kind != want_kind:
            raise InvalidArgument(f"{name} is a {kind or 'non-virtual'} link, not a {want_kind}")
    return index


def pin_bridge_mac(netns: NetnsSpec, bridge: str, mac: str) -> str:
    """Set (pin) the bridge's MAC; returns the MAC now set. Setting the
    address, even to the current value, makes ``addr_assign_type`` 3."""
    mac = normalize_mac(mac)
    ns = Namespace.of(netns)
    state = bridge_mac_state(ns, bridge)
    if state.pinned and state.mac == mac:
        return mac

    def body() -> str:
        with Links() as links:
            idx = _index(links, bridge, "bridge")
            try:
                links.set(idx, mac=mac)
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    raise NotPermitted("setting a MAC needs root (CAP_NET_ADMIN)") from None
                raise InvalidArgument(
                    f"the kernel refused MAC {mac} for {bridge}: {exc.strerror}"
                ) from None
            return links.link(idx).mac

    return ns.run(body)


def set_sysctl(netns: NetnsSpec, key: str, value: str) -> tuple[str, str]:
    """Set a per-namespace sysctl; returns (old, new)."""
    return Namespace.of(netns).set_sysctl(key, value)


def set_link_mtu(netns: NetnsSpec, name: str, mtu: int) -> tuple[int, int]:
    """Set one link's MTU; returns (old, new)."""

    def body() -> tuple[int, int]:
        with Links() as links:
            idx = _index(links, name)
            old = links.link(idx).mtu
            if old != mtu:
                try:
                    links.set(idx, mtu=mtu)
                except OSError as exc:
                    raise InvalidArgument(
                        f"the kernel refused MTU {mtu} for {name}: {exc.strerror}"
                    ) from None
            return old, links.link(idx).mtu

    return Namespace.of(netns).run(body)
