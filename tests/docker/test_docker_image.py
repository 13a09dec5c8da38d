"""The offline image's rootfs: a static busybox and its applet links."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest

from netsleuth.docker.image import APPLETS, find_static_busybox, is_static_elf, rootfs_tar


def test_python_is_not_static_busybox_is() -> None:
    assert not is_static_elf(Path(sys.executable).resolve().read_bytes()[:4096])
    assert not is_static_elf(b"#!/bin/sh\necho hi\n")
    try:
        busybox = find_static_busybox()
    except Exception as exc:  # DependencyMissing on a machine without busybox-static
        pytest.fail(f"{exc}")
    assert is_static_elf(busybox.read_bytes()[:4096])


def test_rootfs_holds_busybox_and_links_and_is_deterministic() -> None:
    data = rootfs_tar()
    assert data == rootfs_tar(find_static_busybox())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile()
    assert members["bin/busybox"].mode == 0o755
    assert members["bin/busybox"].size == find_static_busybox().stat().st_size
    for applet in ("sh", "sleep", "nslookup", "ip"):
        assert applet in APPLETS
        assert members[f"bin/{applet}"].issym()
        assert members[f"bin/{applet}"].linkname == "busybox"
    for folder in ("etc", "proc", "sys", "dev", "tmp"):
        assert members[folder].isdir()
    assert {m.uid for m in members.values()} == {0}
    assert {m.mtime for m in members.values()} == {0}
