"""The primitives: setns/unshare through libc, namespace creation and
removal with pyroute2. Code that runs something in a namespace goes through
:class:`netsleuth.netns.Namespace`; :func:`run_in` and :func:`enter_for_good`
are what it is built on (and what a fresh worker process calls)."""

from __future__ import annotations

import ctypes
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from netsleuth.errors import NetsleuthError, NotPermitted, TargetNotFound
from netsleuth.netns.owners import Owner

__all__ = [
    "NETNS_RUN_DIR",
    "OWNERS_DIR",
    "SysfsAnchor",
    "create_owned",
    "detach_mount",
    "enter_for_good",
    "exec_argv",
    "exists",
    "list_named",
    "netns_path",
    "pids_in",
    "remove_owned",
    "run_in",
    "setns",
    "sysctl_path",
]

T = TypeVar("T")

NETNS_RUN_DIR = Path("/run/netns")
NETNS_ETC_DIR = Path("/etc/netns")
OWNERS_DIR = Path("/run/netsleuth/owners")

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MS_BIND = 4096
MS_MOVE = 8192
MNT_DETACH = 2
CGROUP_ROOT = "/sys/fs/cgroup"

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def netns_path(name: str) -> Path:
    return NETNS_RUN_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


def list_named(prefix: str = "") -> list[str]:
    if not NETNS_RUN_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_RUN_DIR.iterdir() if p.name.startswith(prefix))


def setns(path: str | Path) -> None:
    """Move the *calling thread* into the network namespace at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TargetNotFound(f"network namespace {path} does not exist") from None
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns({path})")
    finally:
        os.close(fd)


def run_in(path: str | Path, func: Callable[[], T]) -> T:
    """Run ``func`` in a helper thread that has entered the namespace at
    ``path``; the caller's thread never changes namespace."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            setns(path)
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns:{path}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _mount(source: str, target: str, fstype: str | None, flags: int) -> None:
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None
        ),
        f"mount {target}",
    )


def detach_mount(point: str | Path) -> bool:
    """Lazily unmount ``point`` (MNT_DETACH); False if that failed (not a mount)."""
    return int(_libc.umount2(str(point).encode(), MNT_DETACH)) == 0


def enter_for_good(
    path: str | Path, name: str | None = None, *, cgroup_stash: Path | None = None
) -> None:
    """Enter a network namespace for the rest of this *process* (a worker).

    Like ``ip netns exec``: a private mount namespace with sysfs remounted so
    ``/sys/class/net`` shows the namespace's interfaces, and, for a named
    namespace, the files of ``/etc/netns/NAME`` bound over ``/etc``.
    With ``cgroup_stash`` (an empty directory), the cgroup mounts under /sys
    survive the remount (dockerd needs them): they are parked there and moved
    back. Call only in a fresh single-threaded worker process.
    """
    setns(path)
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount("none", "/", None, MS_REC | MS_SLAVE)
    keep_cgroups = cgroup_stash is not None and os.path.ismount(CGROUP_ROOT)
    if keep_cgroups:
        assert cgroup_stash is not None
        cgroup_stash.mkdir(parents=True, exist_ok=True)
        _mount(CGROUP_ROOT, str(cgroup_stash), None, MS_BIND | MS_REC)
    _check(_libc.umount2(b"/sys", MNT_DETACH), "umount /sys")
    _mount("sysfs", "/sys", "sysfs", 0)
    if keep_cgroups:
        _mount(str(cgroup_stash), CGROUP_ROOT, None, MS_MOVE)
    if name:
        etc = NETNS_ETC_DIR / name
        if etc.is_dir():
            for entry in etc.iterdir():
                target = Path("/etc") / entry.name
                if target.exists():
                    _mount(str(entry), str(target), None, MS_BIND)


def create_owned(name: str, etc_files: dict[str, str] | None = None) -> Path:
    """Create a named namespace owned by this process; optionally give it its
    own /etc files (e.g. ``{"resolv.conf": "nameserver 198.18.255.2\\n"}``)."""
    if os.geteuid() != 0:
        raise NotPermitted("creating network namespaces needs root; run with sudo")
    if exists(name):
        raise NetsleuthError(f"network namespace {name} already exists; pick another run id")
    OWNERS_DIR.mkdir(parents=True, exist_ok=True)
    (OWNERS_DIR / name).write_text(Owner.me().to_json())
    from pyroute2 import netns as pr_netns  # not needed by probe workers: import late

    pr_netns.create(name)
    if etc_files:
        etc = NETNS_ETC_DIR / name
        etc.mkdir(parents=True, exist_ok=True)
        for fname, content in etc_files.items():
            (etc / fname).write_text(content)
    return netns_path(name)


def remove_owned(name: str) -> None:
    """Remove a namespace (its interfaces go with it), its /etc files and its
    owner record. Missing pieces are fine: this is also the crash cleaner."""
    if exists(name):
        from pyroute2 import netns as pr_netns

        pr_netns.remove(name)
    shutil.rmtree(NETNS_ETC_DIR / name, ignore_errors=True)
    (OWNERS_DIR / name).unlink(missing_ok=True)


def sysctl_path(key: str, proc: Path = Path("/proc")) -> Path:
    """Path under ``proc``/sys of a sysctl given as ``net/ipv4/conf/br0/arp_notify``
    or ``net.ipv4.conf.br0.arp_notify`` (an interface name may hold dots).
    The one parser of sysctl names; read it in the namespace it is about
    (:meth:`netsleuth.netns.Namespace.sysctl`)."""
    if "/" in key:
        return proc / "sys" / key
    parts = key.split(".")
    if parts[:3] == ["net", "ipv4", "conf"] and len(parts) > 5:
        parts = [*parts[:3], ".".join(parts[3:-1]), parts[-1]]
    return proc.joinpath("sys", *parts)


def exec_argv(name: str | None, argv: list[str], *, die_with_parent: bool = False) -> list[str]:
    """argv that runs a program inside the named namespace (``ip netns exec``).

    ``die_with_parent``: the program gets SIGKILL when the thread that started
    it dies (``setpriv --pdeathsig``), so even a SIGKILLed netsleuth leaves no
    helper running. Start such programs from a thread that lives as long.
    """
    if die_with_parent:
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    if name is None:
        return argv
    ip = shutil.which("ip") or "/usr/sbin/ip"
    return [ip, "netns", "exec", name, *argv]


def pids_in(path: str | Path, proc: Path = Path("/proc")) -> list[int]:
    """PIDs of the processes whose network namespace is the one at ``path``."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    want = f"net:[{st.st_ino}]"
    pids = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns/net") == want:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class SysfsAnchor:
    """A tiny process inside a named namespace whose mount view has that
    namespace's sysfs (``ip netns exec`` remounts /sys), so its
    ``/proc/PID/root/sys`` shows the namespace's ``/sys/class/net`` — e.g. a
    bridge's ``addr_assign_type``, which netlink does not carry. It exits by
    itself when its owner dies (its stdin closes)."""

    def __init__(self, name: str) -> None:
        import subprocess

        self._proc = subprocess.Popen(
            exec_argv(name, ["cat"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.root = Path(f"/proc/{self._proc.pid}/root/sys")

    def ready(self, timeout: float = 2.0) -> bool:
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if os.readlink(f"/proc/{self._proc.pid}/exe").endswith("cat"):
                    return (self.root / "class/net").is_dir()
            except OSError:
                pass
            time.sleep(0.005)
        return False

    def close(self) -> None:
        import subprocess

        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
