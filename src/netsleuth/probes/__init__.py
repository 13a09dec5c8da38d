"""Probes: what netsleuth sends from inside a target, and how often.

Specs (``dns:``, ``resolve:``, ``tcp:``, ``icmp:``) are parsed in :mod:`.spec`;
:mod:`.schedule` holds the fixed, jittered schedule; :mod:`.worker` is the
process that enters a target's namespace and runs every probe of that target
in one epoll loop, sending result batches back to the watch engine, which
turns them into :class:`~netsleuth.model.ProbeResult` rows in the store.
:mod:`.protocol` holds every message the two exchange over their pipe.
"""

from netsleuth.probes.protocol import (
    Done,
    Failed,
    ProbeSlot,
    ProtocolError,
    Ready,
    Results,
    Stop,
    WorkerConfig,
    WorkerMessage,
    WorkerStats,
)
from netsleuth.probes.schedule import Schedule
from netsleuth.probes.spec import (
    ProbeSpec,
    expand_dns_servers,
    parse_probe,
    parse_resolv_conf,
)
from netsleuth.probes.worker import spawn_worker, worker_main

__all__ = [
    "Done",
    "Failed",
    "ProbeSlot",
    "ProbeSpec",
    "ProtocolError",
    "Ready",
    "Results",
    "Schedule",
    "Stop",
    "WorkerConfig",
    "WorkerMessage",
    "WorkerStats",
    "expand_dns_servers",
    "parse_probe",
    "parse_resolv_conf",
    "spawn_worker",
    "worker_main",
]
