"""Fixtures for the real-Docker tier: a namespace with a bridge on which a
throwaway dockerd runs. Tests marked ``docker`` need root and docker.io."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from netsleuth.docker import clean_stale_daemons

BRIDGE = "br0"
BRIDGE_ADDR = "198.18.44.1"


@pytest.fixture(scope="session", autouse=True)
def _clean_stale_daemons() -> None:
    """A crashed earlier run may have left daemons behind (concurrent live ones stay)."""
    import os

    if os.geteuid() == 0 and shutil.which("dockerd"):
        clean_stale_daemons()


@pytest.fixture
def bridge_ns(make_netns: Callable[..., Path]) -> Iterator[str]:
    """A namespace holding bridge ``br0`` 198.18.44.1/24 (MAC not pinned), up."""
    if not shutil.which("dockerd"):
        pytest.fail("dockerd is missing: run scripts/setup (Debian package docker.io)")
    path = make_netns("dk")
    name = path.name
    with IPRoute(netns=name) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        ipr.link("add", ifname=BRIDGE, kind="bridge")
        idx = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.addr("add", index=idx, address=BRIDGE_ADDR, prefixlen=24)
        ipr.link("set", index=idx, state="up")
    yield name
