"""The lab: the bridge-MAC outage, reproduced in throwaway namespaces.

:func:`build_lab` creates a "host" namespace with an unpinned (or pinned)
bridge, NAT and an uplink to an "upstream" namespace running dnsmasq, plus
"container" namespaces on the bridge. :class:`Churn` makes ports join and
leave the bridge like a CI host. ``lab.run`` drives the watch engine against
that topology and summarises the result; ``lab.demo`` tells the whole story.
Every object carries the ``nsl-<run id>-`` prefix, is removed on exit, and a
later run (or ``netsleuth lab clean``) removes what a killed run left behind.
"""

from netsleuth.lab.churn import Churn, ChurnStep, low_mac
from netsleuth.lab.topology import (
    LAB_PREFIX,
    LAB_STATE_DIR,
    LabConfig,
    LabTopology,
    build_lab,
    check_requirements,
    clean_labs,
    load_topology,
    nft_apply,
)

__all__ = [
    "LAB_PREFIX",
    "LAB_STATE_DIR",
    "Churn",
    "ChurnStep",
    "LabConfig",
    "LabTopology",
    "build_lab",
    "check_requirements",
    "clean_labs",
    "load_topology",
    "low_mac",
    "nft_apply",
]
