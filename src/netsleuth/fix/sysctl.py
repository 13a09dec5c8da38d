"""``fix arp-notify`` and ``fix ip-forward``: one sysctl set to the value a
doctor rule wants.

A :class:`SysctlFix` names the key, the value and how to keep it after a
reboot (a kernel setting made now is lost then). :func:`fix_sysctl` reads the
key in the namespace (:meth:`netsleuth.netns.Namespace.sysctl`), sets it
when asked, and returns a :class:`SysctlChange`: what it was, what it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netsleuth.errors import InvalidArgument
from netsleuth.fix.apply import set_sysctl
from netsleuth.netns import Namespace, arp_notify_key

__all__ = [
    "IP_FORWARD",
    "SysctlChange",
    "SysctlFix",
    "arp_notify_fix",
    "fix_sysctl",
    "read_sysctl",
]


@dataclass(frozen=True, slots=True)
class SysctlFix:
    key: str
    value: str
    persist_hint: str  # how to keep it after a reboot


@dataclass(frozen=True, slots=True)
class SysctlChange:
    fix: SysctlFix
    before: str
    after: str
    applied: bool

    @property
    def needed(self) -> bool:
        """The key did not hold the wanted value."""
        return self.before != self.fix.value

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.fix.key,
            "before": self.before,
            "after": self.after,
            "wanted": self.fix.value,
            "applied": self.applied,
            "persist": self.fix.persist_hint,
        }


def arp_notify_fix(bridge: str) -> SysctlFix:
    """arp_notify=1: the bridge announces a MAC change with a gratuitous ARP."""
    key = arp_notify_key(bridge)
    return SysctlFix(
        key,
        "1",
        f"ifupdown: 'post-up sysctl -w {key}=1' in the bridge's stanza; better: "
        f"netsleuth fix bridge {bridge} (pins the MAC, no announcement needed)",
    )


IP_FORWARD = SysctlFix(
    "net.ipv4.ip_forward", "1", "echo net.ipv4.ip_forward=1 > /etc/sysctl.d/60-ip-forward.conf"
)


def read_sysctl(netns: str | Path | None, key: str) -> str:
    """The value of ``key`` in ``netns`` (None: this namespace)."""
    value = Namespace.of(netns).sysctl(key)
    if value is None:
        raise InvalidArgument(f"no {key} here: is the interface name right?")
    return value


def fix_sysctl(netns: str | Path | None, fix: SysctlFix, *, apply: bool) -> SysctlChange:
    """Read the key; with ``apply`` also set it (a no-op when it already holds
    the value)."""
    current = read_sysctl(netns, fix.key)
    if not apply:
        return SysctlChange(fix, current, current, applied=False)
    old, new = set_sysctl(netns, fix.key, fix.value)
    return SysctlChange(fix, old, new, applied=True)
