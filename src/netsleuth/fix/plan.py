"""``fix bridge``: decide what to change (pure), then change it.

:func:`plan_bridge_fix` takes the bridge's current state, the MAC wanted and
the configuration files that define the bridge, and returns a
:class:`BridgeFixPlan` (runtime change, file edits with diffs, or the reason
it must refuse). :func:`read_bridge_fix` reads those inputs (the kernel, the
machine id, the configuration files under :func:`etc_root`) and plans.
:func:`apply_bridge_fix` carries a plan out: netlink first, then each file
after a backup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from netsleuth.audit.readers import bridge_mac_state
from netsleuth.errors import InvalidArgument
from netsleuth.fix.apply import pin_bridge_mac, set_sysctl
from netsleuth.fix.configs import (
    WRITERS,
    Definition,
    Edit,
    EditRefused,
    find_definitions,
    plan_edit,
    write_edit,
)
from netsleuth.fix.conntrack import delete_leftovers, read_leftovers
from netsleuth.fix.mac import derive_mac, normalize_mac, read_machine_id
from netsleuth.fix.sysctl import read_sysctl
from netsleuth.model import Bridge
from netsleuth.netns import arp_notify_key

__all__ = [
    "ETC_ROOT_ENV",
    "PERSIST_CHOICES",
    "BridgeFixPlan",
    "BridgeFixResult",
    "apply_bridge_fix",
    "choose_mac",
    "etc_root",
    "plan_bridge_fix",
    "read_bridge_fix",
]

PERSIST_CHOICES = ("auto", "ifupdown", "networkd", "networkmanager", "netplan", "none")
ZERO_MAC = "00:00:00:00:00:00"
ETC_ROOT_ENV = "NETSLEUTH_ETC_ROOT"


def etc_root(given: Path | None = None) -> Path:
    """Where the network configuration lives: ``given``, else
    ``$NETSLEUTH_ETC_ROOT``, else /etc."""
    if given is not None:
        return Path(given)
    return Path(os.environ.get(ETC_ROOT_ENV, "/etc"))


def choose_mac(spec: str, state: Bridge, machine_id: str | None) -> tuple[str, str]:
    """(mac, how it was chosen) for ``--mac auto|current|XX:..``."""
    if spec == "current":
        if not state.mac or state.mac == ZERO_MAC:
            raise InvalidArgument(
                f"{state.name} has no MAC yet (no ports); use --mac auto or --mac XX:.."
            )
        return state.mac, "current MAC, kept"
    if spec == "auto":
        if machine_id is None:
            raise InvalidArgument("--mac auto needs /etc/machine-id; pass --mac XX:.. instead")
        return derive_mac(state.name, machine_id), "derived from bridge name and machine id"
    return normalize_mac(spec), "given"


@dataclass(frozen=True)
class BridgeFixPlan:
    bridge: str
    netns: str
    state: Bridge
    mac: str
    mac_source: str
    persist: str
    arp_notify: str | None = None  # current value when --arp-notify was asked
    edits: tuple[Edit, ...] = ()
    refusal: str = ""
    definitions: tuple[Definition, ...] = field(default=())
    # conntrack entries made without NAT while the bridge flooded (fix.conntrack);
    # None: not read (needs root)
    leftovers: tuple[str, ...] | None = None

    @property
    def runtime_change(self) -> bool:
        return not (self.state.pinned and self.state.mac == self.mac)

    @property
    def arp_notify_change(self) -> bool:
        return self.arp_notify is not None and self.arp_notify != "1"

    @property
    def changes_anything(self) -> bool:
        return (
            self.runtime_change
            or self.arp_notify_change
            or bool(self.leftovers)
            or any(e.changed for e in self.edits)
        )

    def steps(self) -> list[str]:
        where = "" if self.netns == "host" else f" (netns {self.netns})"
        out = []
        if self.runtime_change:
            out.append(
                f"set {self.bridge}{where} MAC {self.state.mac} -> {self.mac} "
                f"({self.mac_source}); addr_assign_type {self.state.addr_assign_type} -> 3"
            )
        else:
            out.append(f"{self.bridge}{where} already pinned to {self.mac}: no runtime change")
        if self.arp_notify is not None:
            key = arp_notify_key(self.bridge)
            out.append(
                f"set {key} {self.arp_notify} -> 1"
                if self.arp_notify_change
                else f"{key} already 1"
            )
        if self.leftovers:
            out.append(
                f"delete {len(self.leftovers)} conntrack entries made without NAT while the "
                f"bridge flooded (e.g. {self.leftovers[0]}): later packets reusing their ports "
                "would leave untranslated"
            )
        for e in self.edits:
            out.append(
                f"edit {e.path} ({e.manager}), backup first"
                if e.changed
                else f"{e.path} ({e.manager}) already sets {self.mac}"
            )
        if self.persist == "none":
            out.append("no configuration file written (--persist none): lost on reboot")
        return out


def _hints(bridge: str, mac: str, etc_root: Path, managers: list[str]) -> str:
    present = {
        "ifupdown": etc_root / "network" / "interfaces",
        "networkd": etc_root / "systemd" / "network",
        "networkmanager": etc_root / "NetworkManager",
        "netplan": etc_root / "netplan",
    }
    chosen = [m for m in managers if present[m].exists()] or managers
    return "; ".join(WRITERS[m].hint(bridge, mac) for m in chosen)


def plan_bridge_fix(
    state: Bridge,
    netns: str,
    *,
    mac_spec: str,
    persist: str,
    definitions: list[Definition],
    etc_root: Path,
    machine_id: str | None,
    arp_notify: str | None = None,
    leftovers: tuple[str, ...] | None = None,
) -> BridgeFixPlan:
    if persist not in PERSIST_CHOICES:
        raise InvalidArgument(f"--persist must be one of {', '.join(PERSIST_CHOICES)}")
    mac, source = choose_mac(mac_spec, state, machine_id)
    edits: list[Edit] = []
    refusal = ""
    if persist != "none":
        managers = list(WRITERS) if persist == "auto" else [persist]
        defs = [d for d in definitions if d.manager in managers]
        if not defs:
            refusal = (
                f"{state.name} is not defined in any {' / '.join(managers)} configuration "
                f"under {etc_root}, so the fix would not survive a reboot; add it by hand: "
                f"{_hints(state.name, mac, etc_root, managers)}; or pin it only until "
                "reboot with --persist none"
            )
        else:
            try:
                edits = [plan_edit(d, mac) for d in defs]
            except EditRefused as exc:
                refusal = str(exc)
    return BridgeFixPlan(
        bridge=state.name,
        netns=netns,
        state=state,
        mac=mac,
        mac_source=source,
        persist=persist,
        arp_notify=arp_notify,
        edits=tuple(edits),
        refusal=refusal,
        definitions=tuple(definitions),
        leftovers=leftovers,
    )


def read_bridge_fix(
    bridge: str,
    netns: str | None,
    *,
    mac_spec: str,
    persist: str,
    etc_root: Path,
    arp_notify: bool = False,
) -> BridgeFixPlan:
    """Read what :func:`plan_bridge_fix` needs for ``bridge`` in ``netns``
    (None: this namespace) and plan: the bridge's MAC state, the machine id
    (``--mac auto``), arp_notify's value (when asked), the files that define
    the bridge (unless ``persist`` is none) and the conntrack leftovers."""
    state = bridge_mac_state(netns, bridge)
    machine_id = read_machine_id(etc_root) if mac_spec == "auto" else None
    arp = read_sysctl(netns, arp_notify_key(bridge)) if arp_notify else None
    definitions = [] if persist == "none" else find_definitions(etc_root, bridge)
    return plan_bridge_fix(
        state,
        netns or "host",
        mac_spec=mac_spec,
        persist=persist,
        definitions=definitions,
        etc_root=etc_root,
        machine_id=machine_id,
        arp_notify=arp,
        leftovers=read_leftovers(netns, bridge),
    )


@dataclass(frozen=True)
class BridgeFixResult:
    mac: str
    changed: tuple[str, ...]
    backups: tuple[Path, ...]
    conntrack_deleted: int = 0  # entries the flooding had left without NAT


def apply_bridge_fix(plan: BridgeFixPlan, netns: str | Path | None) -> BridgeFixResult:
    """Carry out a plan; refuses (nothing changed) if the plan has a refusal."""
    if plan.refusal:
        raise EditRefused(plan.refusal)
    changed: list[str] = []
    mac = plan.mac
    # arp_notify first: the MAC change that pins the bridge is then announced
    # with a gratuitous ARP, so containers holding a departed MAC relearn now
    if plan.arp_notify_change:
        key = f"net.ipv4.conf.{plan.bridge}.arp_notify"
        set_sysctl(netns, key, "1")
        changed.append(f"{key}=1")
    if plan.runtime_change:
        mac = pin_bridge_mac(netns, plan.bridge, plan.mac)
        changed.append(f"{plan.bridge} MAC pinned to {mac}")
    deleted = []
    if plan.leftovers is not None:  # read again: the pinned bridge floods no more from now on
        deleted = delete_leftovers(netns, plan.bridge)
        if deleted:
            changed.append(f"{len(deleted)} conntrack entries made without NAT deleted")
    backups = []
    for edit in plan.edits:
        backup = write_edit(edit)
        if backup is not None:
            backups.append(backup)
            changed.append(f"{edit.path} updated (backup {backup.name})")
    return BridgeFixResult(
        mac=mac, changed=tuple(changed), backups=tuple(backups), conntrack_deleted=len(deleted)
    )
