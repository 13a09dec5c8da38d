"""watch: probe from inside targets and record every attempt and every
network event into the store.

:class:`WatchEngine` takes a :class:`WatchConfig` (targets, probes, rate,
bounds) and a store path, starts one probe worker per target and the event
sources, and runs until its duration, count or :attr:`WatchEngine.stop_event`.
The CLI and the lab both use it; :mod:`.view` renders its live statistics.
"""

from netsleuth.watch.engine import Observer, WatchConfig, WatchEngine, WatchSummary
from netsleuth.watch.live import LiveStats, SeriesStats
from netsleuth.watch.targets import Location, Target, parse_target

__all__ = [
    "LiveStats",
    "Location",
    "Observer",
    "SeriesStats",
    "Target",
    "WatchConfig",
    "WatchEngine",
    "WatchSummary",
    "parse_target",
]
