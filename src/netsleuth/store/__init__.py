"""The store: one SQLite file (WAL) that every run appends to.

Writers hand probe results and events to a :class:`StoreWriter`, whose own
thread batches them off the probe path (events are written at once, probes
at least every 200 ms, so SIGKILL loses well under a second). Readers open a
:class:`Store` and get runs, per-series numpy columns of probe attempts, and
events, filtered by run and time.

Tables: ``meta`` (schema version), ``runs``, ``series`` (target, probe,
server interned once), ``answers`` (interned answer texts), ``probes`` (the
newest attempts, one row each), ``probe_blocks`` (older attempts as column
blocks, :mod:`netsleuth.store.blocks`), ``probe_minutes`` and ``dropped``
(retention and the size cap, :mod:`netsleuth.store.retention`), ``events``,
``facts`` (host facts such as a bridge's ``addr_assign_type``). docs/store.md
describes the layout and the bounds.
"""

from netsleuth.store.sqlite import (
    SCHEMA_VERSION,
    Dropped,
    MinuteColumns,
    ProbeBatch,
    ProbeColumns,
    RunInfo,
    Series,
    Store,
    StoreWriter,
)

__all__ = [
    "SCHEMA_VERSION",
    "Dropped",
    "MinuteColumns",
    "ProbeBatch",
    "ProbeColumns",
    "RunInfo",
    "Series",
    "Store",
    "StoreWriter",
]
