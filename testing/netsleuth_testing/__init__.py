"""Test and benchmark helpers, not shipped with netsleuth.

- :mod:`.synthetic`: stores modelled on the measured behaviour (flapping
  bridge, pinned, upstream loss, NAT flaps), written through the real store.
- :mod:`.frames`: Ethernet frames carrying DNS or ARP, for golden captures and
  the benchmark capture.
- :mod:`.labruns`: lab faults run through the CLI, many at once (the farm).
- :mod:`.watching`: waiting on a running watch from outside, as a report would.

pytest finds this package through the ``pythonpath`` option in
``pyproject.toml``; the benchmarks put this directory on ``sys.path``.
"""
