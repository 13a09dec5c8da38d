"""Fixtures of the drop tests: the machine's global tracing state, checked
unchanged around every test that traces."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from netsleuth.drops import tracefs


@pytest.fixture
def tracing_unchanged() -> Iterator[None]:
    """The top-level tracing settings and the instances other than ours are
    the same after the test as before it, and none of ours is left."""
    where = tracefs.find_tracefs()
    if where is None:
        pytest.skip("no tracefs on this machine")

    def ours() -> set[str]:
        prefix = f"{tracefs.INSTANCE_PREFIX}{os.getpid()}"
        return {p.name for p in (where / "instances").glob(f"{prefix}*")}

    before, mine = tracefs.global_state(where), ours()
    yield
    assert tracefs.global_state(where) == before
    assert ours() <= mine
