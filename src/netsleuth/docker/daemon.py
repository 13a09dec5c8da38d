"""A throwaway dockerd: started inside a network namespace on a bridge that
already exists, with its own roots, socket and cgroup parent; stopped and
wiped afterwards, or by the next run if its owner was killed.

Layout of one daemon ``ID`` (``run_dir`` and ``data_dir`` are parameters):

- ``/run/netsleuth/docker/ID/``: ``owner.json`` (PID + start time of the
  netsleuth process that owns it), ``state.json`` (dockerd PID + start time,
  storage driver), ``docker.sock``, ``docker.pid``, ``daemon.json`` (an empty
  config, so the machine's ``/etc/docker/daemon.json`` is not read),
  ``dockerd.log`` and ``exec/`` (the exec root: containerd's state and socket).
- ``/var/lib/netsleuth/docker/ID/``: the data root (images, layers).
- cgroups ``/netsleuth-docker-ID`` in every hierarchy (``--cgroup-parent``),
  so every container process can be found and killed even without the API.
- Outside those: containerd shims put their sockets in ``/run/containerd/s``,
  named by a hash of the container ID; teardown removes ours.

dockerd runs in a private mount namespace (see :mod:`._launch`), so its
overlay mounts never appear in the machine's mount table and vanish with its
last process; with ``--iptables=false --ip-forward=false --ip-masq=false``
and the network namespace of the lab, it changes no firewall, sysctl or
interface of the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netsleuth.docker.client import DaemonUnreachable, api_errors, connect
from netsleuth.errors import DependencyMissing, NetsleuthError, NotPermitted
from netsleuth.lifecycle import StartStop
from netsleuth.netns import Namespace, detach_mount
from netsleuth.netns.owners import Owner, owner_alive, process_start_time

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = [
    "CONTAINERD_SHIM_DIR",
    "DOCKER_DATA_DIR",
    "DOCKER_RUN_DIR",
    "DaemonPaths",
    "DockerDaemon",
    "clean_stale_daemons",
    "daemon_paths",
    "dockerd_argv",
    "shim_socket",
    "teardown",
]

DOCKER_RUN_DIR = Path("/run/netsleuth/docker")
DOCKER_DATA_DIR = Path("/var/lib/netsleuth/docker")
CONTAINERD_SHIM_DIR = Path("/run/containerd/s")
CGROUP_ROOT = Path("/sys/fs/cgroup")
_CREATED_SHIM_DIR_MARK = "created-containerd-shim-dir"
STORAGE_DRIVERS = ("overlay2", "vfs")


@dataclass(frozen=True, slots=True)
class DaemonPaths:
    """Every path one throwaway daemon uses; a pure function of its ID."""

    daemon_id: str
    state_dir: Path
    data_root: Path

    @property
    def exec_root(self) -> Path:
        return self.state_dir / "exec"

    @property
    def socket(self) -> Path:
        return self.state_dir / "docker.sock"

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` / ``--docker-host`` value for this daemon."""
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "docker.pid"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "daemon.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "dockerd.log"

    @property
    def owner_file(self) -> Path:
        return self.state_dir / "owner.json"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def cgroup_stash(self) -> Path:
        return self.state_dir / "cgroup-stash"

    @property
    def cgroup_parent(self) -> str:
        return f"netsleuth-docker-{self.daemon_id}"

    @property
    def containerd_socket(self) -> Path:
        return self.exec_root / "containerd" / "containerd.sock"


def daemon_paths(
    daemon_id: str, run_dir: Path = DOCKER_RUN_DIR, data_dir: Path = DOCKER_DATA_DIR
) -> DaemonPaths:
    return DaemonPaths(daemon_id, run_dir / daemon_id, data_dir / daemon_id)


def dockerd_argv(
    dockerd: str,
    paths: DaemonPaths,
    bridge: str,
    storage_driver: str,
    *,
    fixed_cidr: str | None = None,
    dns: Sequence[str] = (),
    shutdown_timeout: int = 2,
) -> list[str]:
    """The dockerd command line: its own roots and socket, the given bridge,
    no firewall, forwarding or masquerading of its own."""
    argv = [
        dockerd,
        f"--config-file={paths.config_file}",
        f"--data-root={paths.data_root}",
        f"--exec-root={paths.exec_root}",
        f"--pidfile={paths.pidfile}",
        f"--host={paths.host}",
        f"--bridge={bridge}",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        f"--storage-driver={storage_driver}",
        f"--cgroup-parent=/{paths.cgroup_parent}",
        f"--shutdown-timeout={shutdown_timeout}",
    ]
    if fixed_cidr:
        argv.append(f"--fixed-cidr={fixed_cidr}")
    argv += [f"--dns={server}" for server in dns]
    return argv


def shim_socket(
    containerd_socket: Path,
    container_id: str,
    namespace: str = "moby",
    shim_dir: Path = CONTAINERD_SHIM_DIR,
) -> Path:
    """Where containerd (1.5+) puts the runc v2 shim's socket of a container:
    ``/run/containerd/s/sha256(<containerd socket>/<namespace>/<id>)``."""
    key = os.path.join(str(containerd_socket), namespace, container_id)
    return shim_dir / hashlib.sha256(key.encode()).hexdigest()


# --------------------------------------------------------------------------
# process helpers


def _alive(pid: int, start_time: int | None, proc: Path = Path("/proc")) -> bool:
    """True if ``pid`` runs, is not a zombie, and (if given) started at ``start_time``."""
    started = process_start_time(pid, proc)
    return started is not None and (start_time is None or started == start_time)


def _wait_gone(pids: dict[int, int | None], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(pid, st) for pid, st in pids.items()):
            return True
        time.sleep(0.05)
    return not any(_alive(pid, st) for pid, st in pids.items())


def _pids_mentioning(needle: str, proc: Path = Path("/proc")) -> dict[int, int | None]:
    """Processes whose command line contains ``needle`` (a path unique to one
    daemon: containerd and the shims it started), with their start times."""
    found: dict[int, int | None] = {}
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle.encode() in cmdline:
            found[int(entry.name)] = process_start_time(int(entry.name), proc)
    return found


def _cgroup_dirs(cgroup_parent: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """The daemon's cgroup directories in every mounted hierarchy (v1 and v2)."""
    dirs = []
    candidates = [root / cgroup_parent]
    if root.is_dir():
        candidates += [sub / cgroup_parent for sub in root.iterdir() if sub.is_dir()]
    for path in candidates:
        if path.is_dir():
            dirs.append(path)
    return dirs


def _pids_in_cgroups(dirs: Iterable[Path]) -> dict[int, int | None]:
    found: dict[int, int | None] = {}
    for top in dirs:
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                for line in procs.read_text().split():
                    found[int(line)] = process_start_time(int(line))
    return found


def _kill(pids: dict[int, int | None], sig: int) -> None:
    for pid, start in pids.items():
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _remove_cgroups(dirs: Iterable[Path], timeout: float = 5.0) -> None:
    for top in dirs:
        deadline = time.monotonic() + timeout
        while top.exists() and time.monotonic() < deadline:
            for sub in sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
            ):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()
            if top.exists():
                time.sleep(0.05)


def _mounts_under(
    roots: Sequence[Path], mountinfo: Path = Path("/proc/self/mountinfo")
) -> list[str]:
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        point = line.split()[4].encode().decode("unicode_escape")
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _container_ids(paths: DaemonPaths) -> set[str]:
    ids: set[str] = set()
    for folder in (
        paths.data_root / "containers",
        paths.exec_root / "containerd" / "daemon" / "io.containerd.runtime.v2.task" / "moby",
    ):
        if folder.is_dir():
            ids.update(p.name for p in folder.iterdir())
    return ids


# --------------------------------------------------------------------------
# teardown (shared by stop() and the stale cleaner)


def _remove_containers_via_api(host: str, timeout: float) -> None:
    import docker.errors

    try:
        with contextlib.closing(connect(host, max(1, int(timeout)))) as client:
            for container in client.containers.list(all=True):
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
    except api_errors():
        pass  # the daemon is unreachable; the cgroup sweep below kills its containers


def teardown(
    paths: DaemonPaths,
    pid: int | None,
    start_time: int | None,
    *,
    grace: float = 10.0,
    run_dir: Path = DOCKER_RUN_DIR,
    shim_dir: Path = CONTAINERD_SHIM_DIR,
) -> None:
    """Stop a daemon and remove everything it made. Safe to call on a
    half-started daemon, a dead one, or one whose owner was SIGKILLed."""
    daemon_alive = pid is not None and _alive(pid, start_time)
    if daemon_alive and paths.socket.exists():
        _remove_containers_via_api(paths.host, timeout=min(grace, 5.0))
    if daemon_alive:
        assert pid is not None
        _kill({pid: start_time}, signal.SIGTERM)
        if not _wait_gone({pid: start_time}, grace):
            _kill({pid: start_time}, signal.SIGKILL)
            _wait_gone({pid: start_time}, 2.0)
    # containerd, shims, and every process left in the daemon's cgroups.
    cgroups = _cgroup_dirs(paths.cgroup_parent)
    for _ in range(3):
        leftovers = _pids_mentioning(str(paths.exec_root)) | _pids_in_cgroups(cgroups)
        if not leftovers:
            break
        _kill(leftovers, signal.SIGKILL)
        _wait_gone(leftovers, 3.0)
    _remove_cgroups(cgroups)
    for cid in _container_ids(paths):
        shim_socket(paths.containerd_socket, cid, shim_dir=shim_dir).unlink(missing_ok=True)
    # Mounts under the roots exist only if dockerd ran in the machine's own
    # mount namespace (not the case with the launcher); detach them anyway.
    for point in _mounts_under([paths.state_dir, paths.data_root]):
        detach_mount(point)
    shutil.rmtree(paths.data_root, ignore_errors=True)
    shutil.rmtree(paths.state_dir, ignore_errors=True)
    _remove_shim_dir_if_ours(run_dir, shim_dir)


def _live_daemon_ids(run_dir: Path) -> list[str]:
    if not run_dir.is_dir():
        return []
    return [
        d.name
        for d in run_dir.iterdir()
        if d.is_dir() and owner_alive(Owner.from_file(d / "owner.json"))
    ]


def _note_shim_dir(run_dir: Path, shim_dir: Path) -> None:
    if not shim_dir.exists():
        (run_dir / _CREATED_SHIM_DIR_MARK).write_text(f"{shim_dir}\n")


def _remove_shim_dir_if_ours(run_dir: Path, shim_dir: Path) -> None:
    """``/run/containerd/s`` (and ``/run/containerd``) are removed only if a
    netsleuth daemon created them, they are empty, and no daemon of ours runs."""
    mark = run_dir / _CREATED_SHIM_DIR_MARK
    if not mark.exists() or _live_daemon_ids(run_dir):
        return
    for folder in (shim_dir, shim_dir.parent):
        with contextlib.suppress(OSError):
            folder.rmdir()
    if not shim_dir.exists():
        mark.unlink(missing_ok=True)


def _read_state(paths: DaemonPaths) -> tuple[int | None, int | None]:
    try:
        data = json.loads(paths.state_file.read_text())
        return int(data["pid"]), int(data["start_time"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:  # started but state not written yet: dockerd's own pidfile
        pid = int(paths.pidfile.read_text().strip())
        return pid, process_start_time(pid)
    except (OSError, ValueError):
        return None, None


def clean_stale_daemons(
    run_dir: Path = DOCKER_RUN_DIR, data_dir: Path = DOCKER_DATA_DIR
) -> list[str]:
    """Tear down every throwaway daemon whose owner is dead (SIGKILL, crash,
    reboot); daemons of live owners (concurrent runs) are left alone.
    Returns the IDs cleaned."""
    cleaned: list[str] = []
    ids: set[str] = set()
    if run_dir.is_dir():
        ids |= {d.name for d in run_dir.iterdir() if d.is_dir()}
    if data_dir.is_dir():
        ids |= {d.name for d in data_dir.iterdir() if d.is_dir()}
    for daemon_id in sorted(ids):
        paths = daemon_paths(daemon_id, run_dir, data_dir)
        if owner_alive(Owner.from_file(paths.owner_file)):
            continue
        if not paths.owner_file.exists() and paths.state_dir.is_dir():
            # Being created right now: the owner file is the first thing
            # written, so give a concurrent starter a moment.
            time.sleep(0.2)
            if owner_alive(Owner.from_file(paths.owner_file)):
                continue
        pid, start = _read_state(paths)
        teardown(paths, pid, start, run_dir=run_dir)
        cleaned.append(daemon_id)
    _remove_shim_dir_if_ours(run_dir, CONTAINERD_SHIM_DIR)
    return cleaned


# --------------------------------------------------------------------------
# the context manager


class DockerDaemon(StartStop):
    """A throwaway dockerd inside network namespace ``netns`` on ``bridge``:
    one netsleuth starts and owns (a dockerd found running on the machine is
    a :class:`~netsleuth.docker.daemons.DockerdProcess`).

    ``with DockerDaemon("nsl-3fa2c1-host", "labbr0") as daemon:`` starts it and
    waits for its API; ``daemon.host`` is its ``unix://`` address and
    ``daemon.client()`` a ``docker.DockerClient`` for it. Leaving the block
    (also by Ctrl-C) removes its containers, stops it and wipes its files.

    ``storage_driver=None`` tries overlay2 and falls back to vfs;
    ``daemon.storage_driver`` says which one runs. ``fixed_cidr`` keeps its
    containers' addresses inside part of the bridge's subnet; ``dns`` sets the
    nameservers its containers get in resolv.conf.
    """

    def __init__(
        self,
        netns: str,
        bridge: str,
        *,
        daemon_id: str | None = None,
        storage_driver: str | None = None,
        fixed_cidr: str | None = None,
        dns: Sequence[str] = (),
        start_timeout: float = 30.0,
        stop_grace: float = 10.0,
        run_dir: Path = DOCKER_RUN_DIR,
        data_dir: Path = DOCKER_DATA_DIR,
    ) -> None:
        self.netns = netns
        self.bridge = bridge
        self.daemon_id = daemon_id or secrets.token_hex(3)
        self.paths = daemon_paths(self.daemon_id, run_dir, data_dir)
        self._drivers = (storage_driver,) if storage_driver else STORAGE_DRIVERS
        self.storage_driver: str | None = None
        self.fixed_cidr = fixed_cidr
        self.dns = tuple(dns)
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self._run_dir = run_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._start_time: int | None = None
        self.start_seconds: float | None = None

    # -- public surface ----------------------------------------------------

    @property
    def host(self) -> str:
        return self.paths.host

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def client(self, timeout: int = 30) -> DockerClient:
        """A ``docker.DockerClient`` for this daemon (close it when done)."""
        return connect(self.host, timeout)

    def start(self) -> None:
        if os.geteuid() != 0:
            raise NotPermitted("starting a dockerd needs root; run with sudo")
        dockerd = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
        if dockerd is None:
            raise DependencyMissing("dockerd", "docker.io")
        Namespace.named(self.netns)  # the one "does not exist" error
        if self.paths.state_dir.exists():
            raise NetsleuthError(f"docker daemon {self.daemon_id} already exists; pick another id")
        errors = []
        for driver in self._drivers:
            try:
                self._start_with(dockerd, driver)
                return
            except NetsleuthError as exc:
                errors.append(f"{driver}: {exc}")
                self.stop()
            except BaseException:  # Ctrl-C or SIGTERM while starting: leave nothing
                self.stop()
                raise
        raise NetsleuthError(
            "dockerd did not start (" + "; ".join(errors) + "); run it by hand with the "
            "same flags to see why"
        )

    def stop(self) -> None:
        """Remove containers, stop dockerd (SIGTERM, then SIGKILL), kill its
        containerd and shims, remove its cgroups, sockets and roots."""
        pid = self._proc.pid if self._proc else None
        try:
            teardown(
                self.paths, pid, self._start_time, grace=self.stop_grace, run_dir=self._run_dir
            )
        finally:
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=2.0)
                self._proc = None
            self._start_time = None

    # -- internals ---------------------------------------------------------

    def _start_with(self, dockerd: str, driver: str) -> None:
        paths = self.paths
        paths.state_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
        paths.owner_file.write_text(Owner.me().to_json())
        paths.data_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths.config_file.write_text("{}\n")
        _note_shim_dir(self._run_dir, CONTAINERD_SHIM_DIR)
        argv = dockerd_argv(
            dockerd, paths, self.bridge, driver, fixed_cidr=self.fixed_cidr, dns=self.dns
        )
        launcher = [
            sys.executable,
            "-m",
            "netsleuth.docker._launch",
            self.netns,
            str(paths.cgroup_stash),
            "--",
            *argv,
        ]
        began = time.monotonic()
        with paths.log_file.open("wb") as log:
            self._proc = subprocess.Popen(
                launcher,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us, and we stop it in order
            )
        self._start_time = _wait_start_time(self._proc.pid)
        paths.state_file.write_text(
            json.dumps(
                {
                    "pid": self._proc.pid,
                    "start_time": self._start_time,
                    "netns": self.netns,
                    "bridge": self.bridge,
                    "storage_driver": driver,
                    "host": paths.host,
                }
            )
        )
        self._wait_api(began)
        self.storage_driver = driver
        self.start_seconds = time.monotonic() - began

    def _wait_api(self, began: float) -> None:
        assert self._proc is not None
        deadline = began + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise NetsleuthError(f"dockerd exited ({self._last_error()})")
            if self.paths.socket.exists():
                try:
                    connect(self.host, 2).close()
                    return
                except DaemonUnreachable:
                    pass
            time.sleep(0.05)
        raise NetsleuthError(f"dockerd gave no API within {self.start_timeout:.0f} s")

    def _last_error(self) -> str:
        try:
            lines = self.paths.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        for line in reversed(lines):
            if "level=fatal" in line or "failed to start daemon" in line or "error" in line:
                return line.strip()[-300:]
        return lines[-1].strip()[-300:] if lines else "no output"


def _wait_start_time(pid: int, timeout: float = 2.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        start = process_start_time(pid)
        if start is not None:
            return start
        time.sleep(0.01)
    return None
