"""A tiny image built offline: a rootfs tarball holding Debian's static
busybox and its applet links, imported with ``docker import``. No registry.

The tarball is built once per process (deterministic: fixed owners and
mtimes) and the image once per daemon: :func:`ensure_image` imports it only
if the tag is missing from that daemon.
"""

from __future__ import annotations

import functools
import io
import shutil
import struct
import tarfile
from pathlib import Path
from typing import Any

from netsleuth.errors import DependencyMissing

__all__ = ["APPLETS", "BUSYBOX_IMAGE", "ensure_image", "find_static_busybox", "rootfs_tar"]

BUSYBOX_IMAGE = "netsleuth/busybox:1"
APPLETS = (
    "sh", "sleep", "nslookup", "ip", "ping", "cat", "ls", "echo", "true", "false",
    "wget", "nc", "hostname", "ifconfig", "route", "arp", "ps", "kill", "date", "env",
)  # fmt: skip
_PT_INTERP = 3


def is_static_elf(data: bytes) -> bool:
    """True for a 64-bit little-endian ELF without a program interpreter."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(data):
            return False
        if struct.unpack_from("<I", data, off)[0] == _PT_INTERP:
            return False
    return True


def find_static_busybox() -> Path:
    """The statically linked busybox (Debian package busybox-static)."""
    candidates = [Path("/bin/busybox"), Path("/usr/bin/busybox")]
    found = shutil.which("busybox")
    if found:
        candidates.insert(0, Path(found))
    for path in candidates:
        try:
            with path.open("rb") as fh:
                head = fh.read(4096)
        except OSError:
            continue
        if is_static_elf(head):
            return path
    raise DependencyMissing("a statically linked busybox", "busybox-static")


@functools.cache
def rootfs_tar(busybox: Path | None = None) -> bytes:
    """A rootfs tarball: ``/bin/busybox``, a link per applet, empty /etc,
    /proc, /sys, /dev, /tmp. Same bytes for the same busybox."""
    binary = (busybox or find_static_busybox()).read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)

        for name in ("bin", "etc", "proc", "sys", "dev", "tmp", "root"):
            add_dir(name, 0o1777 if name == "tmp" else 0o755)
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(binary)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(binary))
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            link.mode = 0o777
            tar.addfile(link)
    return buf.getvalue()


def ensure_image(client: Any, tag: str = BUSYBOX_IMAGE) -> str:
    """Import the busybox image into the daemon behind ``client`` (a
    ``docker.DockerClient``) unless ``tag`` is already there; returns its ID."""
    import docker.errors

    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        pass
    repository, _, version = tag.partition(":")
    client.api.import_image_from_data(
        rootfs_tar(),
        repository=repository,
        tag=version or "latest",
        changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"],
    )
    return str(client.images.get(tag).id)
