"""Test and benchmark helpers, not shipped with netsleuth.

- :mod:`.synthetic`: stores modelled on the measured behaviour (flapping
  bridge, pinned, upstream loss, NAT flaps), written through the real store.
- :mod:`.frames`: Ethernet frames carrying DNS or ARP, for golden captures and
  the benchmark capture.

pytest finds this package through the ``pythonpath`` option in
``pyproject.toml``; the benchmarks put this directory on ``sys.path``.
"""
