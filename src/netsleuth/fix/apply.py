"""Runtime changes through netlink and /proc/sys, in this or another namespace.

Each function reads the state first and changes nothing when it already is
as asked, so calling it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netsleuth.audit.readers import bridge_mac_state
from netsleuth.errors import InvalidArgument, NotPermitted, TargetNotFound
from netsleuth.fix.mac import normalize_mac
from netsleuth.netns import sysctl_path

__all__ = ["in_netns", "pin_bridge_mac", "set_link_mtu", "set_sysctl"]

T = TypeVar("T")


def _ns_path(netns: str | Path | None) -> Path | None:
    if netns is None:
        return None
    from netsleuth.netns import netns_path

    path = Path(netns) if "/" in str(netns) else netns_path(str(netns))
    if not path.exists():
        raise TargetNotFound(f"network namespace {netns} does not exist; see `ip netns list`")
    return path


def in_netns(netns: str | Path | None, func: Callable[[], T]) -> T:
    """Run ``func`` here (None) or in a helper thread inside ``netns``."""
    path = _ns_path(netns)
    if path is None:
        return func()
    from netsleuth.netns import run_in

    return run_in(path, func)


def _index(ipr: IPRoute, name: str, want_kind: str | None = None) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise TargetNotFound(f"no interface {name} here; check the name with `ip link`")
    if want_kind is not None:
        link = ipr.get_links(found[0])[0]
        kind = link.get(("linkinfo", "kind"))
        if kind != want_kind:
            raise InvalidArgument(f"{name} is a {kind or 'non-virtual'} link, not a {want_kind}")
    return int(found[0])


def pin_bridge_mac(netns: str | Path | None, bridge: str, mac: str) -> str:
    """Set (pin) the bridge's MAC; returns the MAC now set. Setting the
    address, even to the current value, makes ``addr_assign_type`` 3."""
    mac = normalize_mac(mac)

    state = bridge_mac_state(netns, bridge)
    if state.pinned and state.mac == mac:
        return mac

    def body() -> str:
        with IPRoute() as ipr:
            idx = _index(ipr, bridge, "bridge")
            try:
                ipr.link("set", index=idx, address=mac)
            except NetlinkError as exc:
                if exc.code == 1:
                    raise NotPermitted("setting a MAC needs root (CAP_NET_ADMIN)") from None
                raise InvalidArgument(f"the kernel refused MAC {mac} for {bridge}: {exc}") from None
            return str(ipr.get_links(idx)[0].get("address")).lower()

    return in_netns(netns, body)


def set_sysctl(netns: str | Path | None, key: str, value: str) -> tuple[str, str]:
    """Set a per-namespace sysctl; returns (old, new)."""

    def body() -> tuple[str, str]:
        path = sysctl_path(key)
        try:
            old = path.read_text().strip()
        except FileNotFoundError:
            raise TargetNotFound(f"no sysctl {key} here (interface or module missing)") from None
        if old != value:
            try:
                path.write_text(f"{value}\n")
            except PermissionError:
                raise NotPermitted(f"setting {key} needs root") from None
        return old, path.read_text().strip()

    return in_netns(netns, body)


def set_link_mtu(netns: str | Path | None, name: str, mtu: int) -> tuple[int, int]:
    """Set one link's MTU; returns (old, new)."""

    def body() -> tuple[int, int]:
        with IPRoute() as ipr:
            idx = _index(ipr, name)
            old = int(ipr.get_links(idx)[0].get("mtu"))
            if old != mtu:
                try:
                    ipr.link("set", index=idx, mtu=mtu)
                except NetlinkError as exc:
                    raise InvalidArgument(
                        f"the kernel refused MTU {mtu} for {name}: {exc}"
                    ) from None
            return old, int(ipr.get_links(idx)[0].get("mtu"))

    return in_netns(netns, body)
