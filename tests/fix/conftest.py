"""Namespaces for the fix tests, named ``nsl-fx<hex>-LABEL`` and removed
(with their /etc/netns/NAME) afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netsleuth import netns


@pytest.fixture
def nsl_netns() -> Iterator[Callable[..., Path]]:
    created: list[str] = []
    tag = secrets.token_hex(3)

    def make(label: str, etc_files: dict[str, str] | None = None) -> Path:
        name = f"nsl-fx{tag}-{label}"
        path = netns.create_owned(name, etc_files)
        created.append(name)
        return path

    yield make
    for name in created:
        netns.remove_owned(name)


@pytest.fixture
def no_sysctl_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Machine-wide sysctls must never change in a test: any write through
    the fix layer fails it."""

    def refuse(*args: object) -> tuple[str, str]:
        raise AssertionError(f"a test tried to set a sysctl: {args}")

    monkeypatch.setattr("netsleuth.fix.sysctld.set_sysctl", refuse)
    monkeypatch.setattr("netsleuth.fix.apply.set_sysctl", refuse)
