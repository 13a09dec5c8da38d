"""netsleuth: find the cause of sporadic connectivity failures of containers
and network namespaces on a Linux host.

Data flows one way::

    sources (probes, netlink, docker, host snapshot, packets)
        -> store (SQLite) -> analysis -> findings -> renderers

Packages, one concern each:

- ``model``    frozen dataclasses that cross package boundaries
- ``errors``   the exception root, :class:`NetsleuthError`, and its subclasses
- ``netns``    entering, creating and cleaning network namespaces
- ``probes``   DNS/resolver/TCP/ICMP probes on a fixed schedule, one worker per target
- ``events``   netlink (link, neigh, fdb, route), nftables and Docker event sources
- ``store``    the SQLite store every run appends to
- ``watch``    the engine that wires targets, probes, events and the store together
- ``analysis`` pure functions: episodes, statistics, correlation, knowledge base
- ``audit``    host snapshot and the ``doctor`` rules
- ``fix``      pinning bridge MACs now and in the host's network configuration
- ``packets``  pcap/pcapng reading, capture, and DNS query journeys
- ``lab``      the throwaway reproduction of the bridge-MAC outage
- ``report``   terminal, JSON and HTML renderers
- ``cli``      the thin command line over all of the above
"""

from netsleuth import compiled as _compiled  # noqa: F401 - first: a stale compiled build never runs

__version__ = "0.1.0"
__all__ = ["__version__"]
