"""Network namespaces (the host layer): one handle to run code in them,
netlink on them, creating them with an owner, and removing the ones whose
owner died.

netsleuth never switches the namespace of its main thread. Everything that
runs inside another namespace goes through a :class:`Namespace` resolved
once from a name, a path, a PID or "ours": :meth:`Namespace.run` calls a
function in a helper thread that ``setns()``\\ es into it;
:meth:`Namespace.run_process` forks a worker that enters it for good (its
own sysfs and ``/etc/netns/NAME``) and hands the pickled result back;
:meth:`Namespace.sysctl` and :meth:`Namespace.set_sysctl` read and set its
sysctls. Underneath are the primitives :func:`run_in` and
:func:`enter_for_good` (a fresh worker process, such as a probe worker or
the dockerd launcher, calls the latter itself).

Netlink lives here too: :class:`Links` (pyroute2: links, addresses, routes,
changes) and the fast raw dumps of :mod:`.rtnl` (:func:`dump_links`,
:func:`count_neighbours`, :func:`netns_id`), both working in the calling
thread's namespace, so they run inside :meth:`Namespace.run`.

Every namespace netsleuth creates is registered with its owner's PID and
start time, so a later run can tell a live namespace of a concurrent run
from a stale one left by a crash (:func:`clean_stale`).
"""

from netsleuth.netns.core import (
    NETNS_RUN_DIR,
    OWNERS_DIR,
    SysfsAnchor,
    create_owned,
    detach_mount,
    enter_for_good,
    exec_argv,
    exists,
    list_named,
    netns_path,
    pids_in,
    remove_owned,
    run_in,
    setns,
    sysctl_path,
)
from netsleuth.netns.links import IfAddress, Links, RouteEntry
from netsleuth.netns.namespace import OURS_LABEL, Namespace, arp_notify_key
from netsleuth.netns.owners import Owner, clean_stale, owner_alive, process_start_time
from netsleuth.netns.rtnl import RawLink, count_neighbours, dump_links, netns_id

__all__ = [
    "NETNS_RUN_DIR",
    "OURS_LABEL",
    "OWNERS_DIR",
    "IfAddress",
    "Links",
    "Namespace",
    "Owner",
    "RawLink",
    "RouteEntry",
    "SysfsAnchor",
    "arp_notify_key",
    "clean_stale",
    "count_neighbours",
    "create_owned",
    "detach_mount",
    "dump_links",
    "enter_for_good",
    "exec_argv",
    "exists",
    "list_named",
    "netns_id",
    "netns_path",
    "owner_alive",
    "pids_in",
    "process_start_time",
    "remove_owned",
    "run_in",
    "setns",
    "sysctl_path",
]
