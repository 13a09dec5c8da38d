"""The handle on one network namespace, and the one way to run code in it.

A :class:`Namespace` is resolved once, from a name under ``/run/netns``, a
path (``/run/netns/NAME``, ``/proc/PID/ns/net``), a PID, or None for the
namespace this process runs in ("ours"); a target that does not exist is one
:class:`~netsleuth.errors.TargetNotFound` that says what to do. Then:

- :meth:`Namespace.run` calls a function in a helper thread that has entered
  the namespace (``setns``); the caller's thread never moves. For calls that
  only need the thread's network namespace: netlink, sockets, ``/proc/sys``.
- :meth:`Namespace.run_process` forks a worker that enters the namespace for
  good (private mount namespace, that namespace's sysfs, ``/etc/netns/NAME``),
  runs the function and hands back its pickled result; a
  :class:`~netsleuth.errors.NetsleuthError` raised there is raised again here.
  For calls that need a whole process: ``/sys/class/net`` of the namespace.
- :meth:`Namespace.sysctl` / :meth:`Namespace.set_sysctl` read and set one
  per-namespace sysctl, named dotted (``net.ipv4.ip_forward``) or with
  slashes, through :func:`~netsleuth.netns.core.sysctl_path`.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from netsleuth.errors import InvalidArgument, NetsleuthError, NotPermitted, TargetNotFound
from netsleuth.netns.core import NETNS_RUN_DIR, enter_for_good, run_in, sysctl_path

__all__ = ["OURS_LABEL", "Namespace", "arp_notify_key"]

T = TypeVar("T")

OURS_LABEL = "host"


def arp_notify_key(bridge: str) -> str:
    """The sysctl that makes ``bridge`` announce a new MAC (gratuitous ARP)."""
    return f"net.ipv4.conf.{bridge}.arp_notify"


@dataclass(frozen=True, slots=True)
class Namespace:
    """One network namespace. ``path`` is None for ours; ``name`` is its
    name under ``/run/netns`` when it has one; ``label`` is how messages and
    snapshots call it. Build it with :meth:`of` (or :meth:`named`,
    :meth:`at`, :meth:`of_pid`, :meth:`ours`)."""

    path: Path | None
    name: str | None = None
    label: str = OURS_LABEL

    # -- resolution ---------------------------------------------------------

    @classmethod
    def ours(cls, label: str = OURS_LABEL) -> Namespace:
        """The namespace this process runs in."""
        return cls(None, None, label)

    @classmethod
    def named(cls, name: str, label: str | None = None) -> Namespace:
        """The namespace ``ip netns`` calls ``name`` (``/run/netns/NAME``)."""
        if not name or "/" in name:
            raise InvalidArgument(f"a namespace name from `ip netns list` has no '/': {name!r}")
        ns = cls(NETNS_RUN_DIR / name, name, label or name)
        ns.check()
        return ns

    @classmethod
    def at(cls, path: str | Path, label: str | None = None) -> Namespace:
        """The namespace at ``path``; one under ``/run/netns`` keeps its name."""
        p = Path(path)
        name = p.name if p.parent == NETNS_RUN_DIR else None
        ns = cls(p, name, label or name or str(p))
        ns.check()
        return ns

    @classmethod
    def of_pid(cls, pid: int, label: str | None = None) -> Namespace:
        """The namespace process ``pid`` runs in (``/proc/PID/ns/net``)."""
        ns = cls(Path(f"/proc/{pid}/ns/net"), None, label or f"pid {pid}")
        ns.check()
        return ns

    @classmethod
    def of(cls, target: Namespace | str | Path | int | None, label: str | None = None) -> Namespace:
        """Any of the spellings: None (ours), a name, a path (has a '/'), a
        PID, or a Namespace (given back, relabelled if ``label`` is given)."""
        if isinstance(target, Namespace):
            return target if label is None else cls(target.path, target.name, label)
        if target is None:
            return cls.ours(label or OURS_LABEL)
        if isinstance(target, int):
            return cls.of_pid(target, label)
        if isinstance(target, Path) or "/" in target:
            return cls.at(target, label)
        return cls.named(target, label)

    @property
    def is_ours(self) -> bool:
        return self.path is None

    def exists(self) -> bool:
        return self.path is None or self.path.exists()

    def check(self) -> None:
        """Raise the one "does not exist" error if the namespace is gone."""
        if not self.exists():
            raise self.missing()

    def missing(self) -> TargetNotFound:
        """The error for this namespace not existing (any more)."""
        if self.name is not None:
            hint = "see `ip netns list`"
        elif self.path is not None and self.path.parts[:2] == ("/", "proc"):
            hint = "the process has exited; check the PID (or restart the container)"
        else:
            hint = "give /run/netns/NAME or /proc/PID/ns/net of a running process"
        return TargetNotFound(f"network namespace {self.label} does not exist; {hint}")

    def inode(self) -> int:
        """The namespace's identity (its nsfs inode)."""
        try:
            return os.stat(self.path or "/proc/thread-self/ns/net").st_ino
        except FileNotFoundError:
            raise self.missing() from None

    # -- running code inside ------------------------------------------------

    def run(self, func: Callable[[], T]) -> T:
        """``func()`` in a helper thread inside this namespace (here, for ours)."""
        if self.path is None:
            return func()
        self.check()
        return run_in(self.path, func)

    def run_process(self, func: Callable[[], T], timeout: float = 60.0) -> T:
        """``func()`` in a forked worker that entered this namespace for good.

        The result comes back pickled. A NetsleuthError raised in the worker
        is raised again here; any other failure, or no answer within
        ``timeout`` seconds (the worker is then killed), is a one-line
        NetsleuthError. Ours: the worker stays in this namespace.
        """
        self.check()
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # worker: enter, compute, send, exit without cleanup handlers
            code = 0
            try:
                os.close(rfd)
                if self.path is not None:
                    enter_for_good(self.path, self.name)
                payload = pickle.dumps(("ok", func()))
            except BaseException as exc:  # noqa: BLE001 - handed back to the parent
                payload = _failure(exc)
                code = 1
            try:
                with os.fdopen(wfd, "wb") as out:
                    out.write(payload)
            finally:
                os._exit(code)
        os.close(wfd)
        chunks = _read_all(rfd, pid, timeout)
        os.waitpid(pid, 0)
        if chunks is None:
            raise NetsleuthError(
                f"the worker in network namespace {self.label} took longer than "
                f"{timeout:g} s; try again"
            )
        answer: tuple[Any, ...] = (
            pickle.loads(b"".join(chunks)) if chunks else ("error", "the worker died")
        )
        if answer[0] == "ok":
            value: T = answer[1]
            return value
        if answer[0] == "raise":
            _kind, cls, message, attrs = answer
            err = cls.__new__(cls)
            Exception.__init__(err, message)
            err.__dict__.update(attrs)
            raise err
        raise NetsleuthError(f"the worker in network namespace {self.label} failed: {answer[1]}")

    # -- sysctls ------------------------------------------------------------

    def sysctl(self, key: str) -> str | None:
        """A per-namespace sysctl's value, or None when it has no file here
        (no such interface, module not loaded)."""

        def read() -> str | None:
            try:
                return sysctl_path(key).read_text().strip()
            except FileNotFoundError:
                return None

        return self.run(read)

    def set_sysctl(self, key: str, value: str | int) -> tuple[str, str]:
        """Set a per-namespace sysctl unless it already has ``value``;
        returns (old, new)."""
        want = str(value)

        def write() -> tuple[str, str]:
            path = sysctl_path(key)
            try:
                old = path.read_text().strip()
            except FileNotFoundError:
                raise TargetNotFound(
                    f"no sysctl {key} in {self.label} (interface or module missing)"
                ) from None
            if old != want:
                try:
                    path.write_text(f"{want}\n")
                except PermissionError:
                    raise NotPermitted(f"setting {key} needs root") from None
            return old, path.read_text().strip()

        return self.run(write)

    def arp_notify(self, bridge: str) -> int | None:
        """``arp_notify`` of ``bridge`` (None: no such interface here)."""
        value = self.sysctl(arp_notify_key(bridge))
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None


def _failure(exc: BaseException) -> bytes:
    """What a worker sends back for an exception: the NetsleuthError itself
    (class, message and fields), anything else as its repr."""
    if isinstance(exc, NetsleuthError):
        try:
            return pickle.dumps(("raise", type(exc), str(exc), dict(vars(exc))))
        except Exception:  # noqa: BLE001 - a class or field that cannot be pickled
            return pickle.dumps(("raise", NetsleuthError, str(exc), {}))
    return pickle.dumps(("error", repr(exc)[:300]))


def _read_all(rfd: int, pid: int, timeout: float) -> list[bytes] | None:
    """Everything the worker writes until it closes the pipe; None (and the
    worker killed, by PID) if that takes longer than ``timeout``."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with os.fdopen(rfd, "rb", buffering=0) as src:
        while True:
            remaining = deadline - time.monotonic()
            ready = select.select([src], [], [], remaining)[0] if remaining > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)  # our own worker
                return None
            chunk = src.read(1 << 16)
            if not chunk:
                return chunks
            chunks.append(chunk)
