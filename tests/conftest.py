"""Shared fixtures. Tiers: plain tests need nothing; tests marked ``netns``,
``lab``, ``docker`` build real namespaces and need root (CI runs as root).
Without root they are skipped with a reason, never silently passed."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netsleuth import netns

NEEDS_ROOT = {"netns", "lab", "docker"}
TEST_PREFIX = "nslt-"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root to build network namespaces")
    for item in items:
        if NEEDS_ROOT & {m.name for m in item.iter_markers()}:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _tracing_unchanged() -> Iterator[None]:
    """Every test leaves the machine's tracing as it found it: the top-level
    settings and other tools' instances unchanged, no instance of netsleuth's
    left behind (watch, lab and capture start the drop source)."""
    from netsleuth.drops import tracefs

    where = tracefs.find_tracefs(mount=False)
    if where is None:
        yield
        return

    def ours() -> set[str]:
        return {p.name for p in (where / "instances").glob(f"{tracefs.INSTANCE_PREFIX}*")}

    before, mine = tracefs.global_state(where), ours()
    yield
    assert tracefs.global_state(where) == before, "the test changed the global tracing state"
    assert ours() <= mine, f"tracing instances left behind: {sorted(ours() - mine)}"


@pytest.fixture(scope="session", autouse=True)
def _clean_stale_test_namespaces() -> None:
    """A crashed earlier test run may have left namespaces behind."""
    if os.geteuid() == 0:
        netns.clean_stale(TEST_PREFIX)


@pytest.fixture
def make_netns() -> Iterator[Callable[..., Path]]:
    """Create owned namespaces ``nslt-<random>-<label>``; all removed afterwards."""
    created: list[str] = []
    tag = secrets.token_hex(3)

    def make(label: str, etc_files: dict[str, str] | None = None) -> Path:
        name = f"{TEST_PREFIX}{tag}-{label}"
        path = netns.create_owned(name, etc_files)
        created.append(name)
        return path

    yield make
    for name in created:
        netns.remove_owned(name)


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture(scope="session")
def as_nobody() -> list[str]:
    """argv prefix that runs a command as an unprivileged user, for "needs
    root" tests; skipped (with the reason) where that user cannot run our
    interpreter, e.g. a checkout under a private home directory."""
    probe = subprocess.run(
        [*AS_NOBODY, sys.executable, "-c", "import netsleuth"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            f"an unprivileged user cannot run {sys.executable}: {probe.stderr.strip()[:200]}"
        )
    return AS_NOBODY
