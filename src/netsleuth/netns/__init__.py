"""Network namespaces: entering them, creating them with an owner, and
removing the ones whose owner died.

netsleuth never switches the namespace of its main thread. It either runs a
short function in a helper thread that ``setns()``\\ es into the target
(:func:`run_in`), or starts a worker process that enters the target for good
(:func:`enter_for_good`). Every namespace netsleuth creates is registered with
its owner's PID and start time, so a later run can tell a live namespace of a
concurrent run from a stale one left by a crash (:func:`clean_stale`).
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
    sysctl_get,
    sysctl_path,
    sysctl_set,
)
from netsleuth.netns.owners import Owner, clean_stale, owner_alive, process_start_time

__all__ = [
    "NETNS_RUN_DIR",
    "OWNERS_DIR",
    "Owner",
    "SysfsAnchor",
    "clean_stale",
    "create_owned",
    "detach_mount",
    "enter_for_good",
    "exec_argv",
    "exists",
    "list_named",
    "netns_path",
    "owner_alive",
    "pids_in",
    "process_start_time",
    "remove_owned",
    "run_in",
    "setns",
    "sysctl_get",
    "sysctl_path",
    "sysctl_set",
]
