"""``netsleuth fix``: remove a cause now and make the fix survive a reboot.

Data moves in three steps. State is read (:func:`netsleuth.audit.bridge_mac_state`
for the bridge, :func:`find_definitions` for the files of ifupdown,
systemd-networkd, NetworkManager and netplan that define it). A pure planner
(:func:`plan_bridge_fix`) picks the MAC (:func:`derive_mac` for ``auto``),
renders each file edit with its own :class:`Writer` and reads it back with
the same parser, or records why it must refuse. :func:`apply_bridge_fix`
then changes the kernel through netlink (:func:`pin_bridge_mac`) and writes
each changed file atomically after a backup. Every step is idempotent.
"""

from netsleuth.fix.apply import in_netns, pin_bridge_mac, set_link_mtu, set_sysctl
from netsleuth.fix.configs import (
    WRITERS,
    Definition,
    Edit,
    EditRefused,
    Writer,
    find_definitions,
    plan_edit,
    write_edit,
)
from netsleuth.fix.mac import derive_mac, normalize_mac, read_machine_id
from netsleuth.fix.plan import (
    PERSIST_CHOICES,
    BridgeFixPlan,
    BridgeFixResult,
    apply_bridge_fix,
    choose_mac,
    plan_bridge_fix,
)

__all__ = [
    "PERSIST_CHOICES",
    "WRITERS",
    "BridgeFixPlan",
    "BridgeFixResult",
    "Definition",
    "Edit",
    "EditRefused",
    "Writer",
    "apply_bridge_fix",
    "choose_mac",
    "derive_mac",
    "find_definitions",
    "in_netns",
    "normalize_mac",
    "pin_bridge_mac",
    "plan_bridge_fix",
    "plan_edit",
    "read_machine_id",
    "set_link_mtu",
    "set_sysctl",
    "write_edit",
]
