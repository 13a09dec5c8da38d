"""``netsleuth fix``: remove a cause now and make the fix survive a reboot.

Data moves in three steps. State is read (:func:`netsleuth.audit.bridge_mac_state`
for the bridge, :func:`find_definitions` for the files of ifupdown,
systemd-networkd, NetworkManager and netplan that define it). A pure planner
(:func:`plan_bridge_fix`) picks the MAC (:func:`derive_mac` for ``auto``),
renders each file edit with its own :class:`Writer` and reads it back with
the same parser, or records why it must refuse. :func:`apply_bridge_fix`
then changes the kernel through netlink (:func:`pin_bridge_mac`) and writes
each changed file atomically after a backup; :func:`read_bridge_fix` does the
reading and planning in one call. The smaller fixes follow the same shape:
:mod:`.sysctl` (arp_notify, ip_forward) and :mod:`.mtu` (one MTU on a bridge
and its ports); sysctl plans that persist in a sysctl.d file
(:mod:`.sysctld`) for :mod:`.rpfilter` (loose rp_filter) and :mod:`.tables`
(nf_conntrack_max, gc_thresh1/2/3 sized from the usage); :mod:`.resolv`
(``options single-request-reopen`` in /etc/netns/NAME/resolv.conf). Every
step is idempotent.
"""

from netsleuth.fix.apply import pin_bridge_mac, set_link_mtu, set_sysctl
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
from netsleuth.fix.mtu import MtuPlan, apply_mtu_plan, plan_mtu, read_mtu_plan
from netsleuth.fix.plan import (
    PERSIST_CHOICES,
    BridgeFixPlan,
    BridgeFixResult,
    apply_bridge_fix,
    choose_mac,
    etc_root,
    plan_bridge_fix,
    read_bridge_fix,
)
from netsleuth.fix.sysctl import (
    IP_FORWARD,
    SysctlChange,
    SysctlFix,
    arp_notify_fix,
    fix_sysctl,
    read_sysctl,
)

__all__ = [
    "IP_FORWARD",
    "PERSIST_CHOICES",
    "WRITERS",
    "BridgeFixPlan",
    "BridgeFixResult",
    "Definition",
    "Edit",
    "EditRefused",
    "MtuPlan",
    "SysctlChange",
    "SysctlFix",
    "Writer",
    "apply_bridge_fix",
    "apply_mtu_plan",
    "arp_notify_fix",
    "choose_mac",
    "derive_mac",
    "etc_root",
    "find_definitions",
    "fix_sysctl",
    "normalize_mac",
    "pin_bridge_mac",
    "plan_bridge_fix",
    "plan_edit",
    "plan_mtu",
    "read_bridge_fix",
    "read_machine_id",
    "read_mtu_plan",
    "read_sysctl",
    "set_link_mtu",
    "set_sysctl",
    "write_edit",
]
