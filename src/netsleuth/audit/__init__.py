"""The host audit behind ``netsleuth doctor``.

Data moves one way: thin readers (:mod:`.readers`: sysfs and procfs under a
configurable root, netlink through :mod:`netsleuth.netns`, ``nft -j``/
``iptables-save`` parsed by :mod:`.firewall`, systemd ``.link`` files,
dockerd processes from :func:`netsleuth.docker.list_daemons`) build one
frozen :class:`HostSnapshot` per network namespace;
pure rules (:mod:`.rules`, each a small :class:`Rule` with ``id`` and
``check(snapshot) -> list[Finding]``) turn snapshots into
:class:`netsleuth.model.Finding`; :func:`audit` runs them all and
:func:`run_doctor` does read + audit in one call. Other namespaces are read
by a worker that enters them (:meth:`netsleuth.netns.Namespace.run_process`),
so this process never changes namespace.
"""

from netsleuth.audit.doctor import audit, container_namespaces, read_targets, run_doctor
from netsleuth.audit.readers import (
    Roots,
    bridge_mac_state,
    read_snapshot,
    read_snapshot_in,
)
from netsleuth.audit.rules import RULES, Rule
from netsleuth.audit.snapshot import HostSnapshot

__all__ = [
    "RULES",
    "HostSnapshot",
    "Roots",
    "Rule",
    "audit",
    "bridge_mac_state",
    "container_namespaces",
    "read_snapshot",
    "read_snapshot_in",
    "read_targets",
    "run_doctor",
]
