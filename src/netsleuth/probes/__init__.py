"""Probes: what netsleuth sends from inside a target, and how often.

Specs (``dns:``, ``resolve:``, ``tcp:``, ``icmp:``) are parsed in :mod:`.spec`;
:mod:`.schedule` holds the fixed, jittered schedule; :mod:`.worker` is the
process that enters a target's namespace and runs every probe of that target
in one epoll loop, sending result tuples back to the watch engine, which
turns them into :class:`~netsleuth.model.ProbeResult` rows in the store.
"""

from netsleuth.probes.schedule import Schedule
from netsleuth.probes.spec import (
    ProbeSpec,
    expand_dns_servers,
    parse_probe,
    parse_resolv_conf,
)
from netsleuth.probes.worker import WorkerConfig, spawn_worker, worker_main

__all__ = [
    "ProbeSpec",
    "Schedule",
    "WorkerConfig",
    "expand_dns_servers",
    "parse_probe",
    "parse_resolv_conf",
    "spawn_worker",
    "worker_main",
]
