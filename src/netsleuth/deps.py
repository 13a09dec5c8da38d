"""What each command needs from the system, in one table, and the checks.

netsleuth runs a few programs (``nft``, ``ip``, ``dnsmasq``, ``bpftrace``,
``dockerd``) and reads a few kernel interfaces (tracefs, BTF, the Docker
socket). :data:`DEPENDENCIES` says how each is found and which Debian package
(or kernel setting) provides it; :data:`COMMANDS` says which command uses
which, and whether the command cannot run without it (``required``) or only
loses a part (the part is named). ``netsleuth check-deps`` prints the table
with what is present; each command calls :func:`require` first, so a missing
program is one line naming its package, never a traceback halfway.

Programs are looked up on ``PATH`` plus the sbin directories (where Debian
puts ``ip``, ``nft`` and ``dnsmasq``), as the commands run them. Nothing here
starts or mounts anything.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from netsleuth.errors import DependencyMissing

__all__ = [
    "COMMANDS",
    "DEPENDENCIES",
    "Dependency",
    "Status",
    "Use",
    "docker_socket",
    "kernel_features",
    "probe",
    "require",
    "status_of",
]

SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
BTF = Path("/sys/kernel/btf/vmlinux")
DOCKER_SOCKET = Path("/var/run/docker.sock")


@dataclass(frozen=True, slots=True)
class Dependency:
    """A program or kernel interface; ``package``: the Debian package that
    provides it, or for a kernel feature ``how`` to get it."""

    name: str
    kind: str  # "program" or "kernel"
    package: str = ""
    how: str = ""


@dataclass(frozen=True, slots=True)
class Use:
    """A command's use of a dependency: without it the command cannot run
    (``required``) or does all but ``what``."""

    dependency: str
    required: bool
    what: str


@dataclass(frozen=True, slots=True)
class Status:
    present: bool
    where: str  # the path found, or what is missing


def _program(name: str, package: str) -> Dependency:
    return Dependency(name, "program", package)


DEPENDENCIES: Mapping[str, Dependency] = {
    d.name: d
    for d in (
        _program("ip", "iproute2"),
        _program("nft", "nftables"),
        _program("setpriv", "util-linux"),
        _program("dnsmasq", "dnsmasq-base"),
        _program("iptables-save", "iptables"),
        _program("dockerd", "docker.io"),
        _program("busybox", "busybox-static"),
        _program("bpftrace", "bpftrace"),
        Dependency(
            "tracefs", "kernel", how="a kernel with tracefs (mounted at /sys/kernel/tracing)"
        ),
        Dependency("btf", "kernel", how=f"a kernel built with CONFIG_DEBUG_INFO_BTF ({BTF})"),
        Dependency(
            "docker-socket",
            "kernel",
            package="docker.io",
            how=f"a running Docker daemon ({DOCKER_SOCKET}, or --docker-host)",
        ),
    )
}

_DROPS = (
    Use("tracefs", False, "kernel drop reasons (skb:kfree_skb)"),
    Use("bpftrace", False, "the namespace, device and headers of each drop"),
    Use("btf", False, "the namespace, device and headers of each drop (bpftrace)"),
)
_WATCH = (
    Use("nft", True, "nftables rule changes as events"),
    Use("setpriv", True, "helpers (nft monitor) that die with netsleuth"),
    Use("ip", False, "--host-netns (nft runs there through ip netns exec)"),
    *_DROPS,
    Use("docker-socket", False, "container: targets and Docker events"),
)

COMMANDS: Mapping[str, tuple[Use, ...]] = {
    "lab": (
        Use("ip", True, "namespaces, veths and the bridge"),
        Use("nft", True, "the lab's NAT and firewall"),
        Use("dnsmasq", True, "the lab's DNS server"),
        Use("setpriv", True, "helpers that die with netsleuth"),
        Use("dockerd", False, "--engine docker (a throwaway dockerd)"),
        Use("busybox", False, "--engine docker (the offline container image)"),
        Use("iptables-save", False, "--engine docker (dockerd's NAT)"),
    ),
    "watch": _WATCH,
    "exporter": _WATCH,
    "report": (),
    "doctor": (
        Use("nft", False, "the nftables NAT and forwarding audit"),
        Use("iptables-save", False, "the iptables NAT and forwarding audit"),
        Use("docker-socket", False, "the Docker daemon's settings and networks"),
    ),
    "fix": (),
    "capture": (
        Use("tracefs", False, "--drops: kernel drop reasons next to the capture"),
        Use("bpftrace", False, "--drops: the namespace and device of each drop"),
    ),
    "explain": (),
    "drops": (
        Use("tracefs", True, "reading skb:kfree_skb"),
        Use("bpftrace", False, "the namespace, device and headers of each drop"),
        Use("btf", False, "the namespace, device and headers of each drop (bpftrace)"),
    ),
}


def which(program: str) -> str | None:
    """Where a program is, on PATH or in the sbin directories."""
    path = os.environ.get("PATH", "")
    return shutil.which(program, path=f"{path}:{SBIN}" if path else SBIN)


def _tracefs() -> Status:
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "tracefs":
                return Status(True, fields[1])
        if "tracefs" in Path("/proc/filesystems").read_text():
            return Status(True, "available, not mounted (netsleuth mounts it)")
    except OSError:
        pass
    return Status(False, "no tracefs in this kernel")


def docker_socket(host: str | None = None) -> Path | None:
    """The Unix socket of ``host`` (default ``$DOCKER_HOST``, then the
    standard one); None for a TCP host."""
    host = host or os.environ.get("DOCKER_HOST") or f"unix://{DOCKER_SOCKET}"
    return Path(host.removeprefix("unix://")) if host.startswith(("unix://", "/")) else None


def _docker() -> Status:
    sock = docker_socket()
    if sock is None:
        return Status(True, f"{os.environ.get('DOCKER_HOST')} (TCP, not checked)")
    try:
        if stat.S_ISSOCK(sock.stat().st_mode):
            return Status(True, str(sock))
    except OSError:
        pass
    return Status(False, f"no socket at {sock}")


_PROBES: Mapping[str, Callable[[], Status]] = {
    "tracefs": _tracefs,
    "btf": lambda: Status(BTF.exists(), str(BTF) if BTF.exists() else f"no {BTF}"),
    "docker-socket": _docker,
}


def probe(name: str) -> Status:
    """Whether one dependency is present here (reads only)."""
    dep = DEPENDENCIES[name]
    if dep.kind == "program":
        found = which(name)
        return Status(found is not None, found or "not on PATH")
    return _PROBES[name]()


def status_of(names: list[str] | None = None) -> dict[str, Status]:
    """Each dependency (default: all) and whether it is present."""
    return {name: probe(name) for name in (names or list(DEPENDENCIES))}


def kernel_features() -> dict[str, Status]:
    """What ``--version`` reports: tracefs, BTF, nft, bpftrace, the Docker socket."""
    return status_of(["tracefs", "btf", "nft", "bpftrace", "docker-socket"])


class CommandNeeds(DependencyMissing):
    """A command cannot run: something it needs is missing here."""

    def __init__(self, command: str, dep: Dependency, use: Use) -> None:
        if dep.kind == "program":
            fix = f"install the Debian package {dep.package} (or run scripts/setup)"
            what = f"{dep.name} is missing"
        else:
            fix = f"it needs {dep.how}"
            what = f"{dep.name} is missing"
        Exception.__init__(self, f"{command}: {what} ({use.what}); {fix}")
        self.program = dep.name
        self.package = dep.package


def require(command: str, probe_one: Callable[[str], Status] = probe) -> None:
    """Raise :class:`CommandNeeds` for the first dependency ``command`` cannot
    run without that is missing here."""
    for use in COMMANDS[command]:
        if use.required and not probe_one(use.dependency).present:
            raise CommandNeeds(command, DEPENDENCIES[use.dependency], use)
