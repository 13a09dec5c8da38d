"""Every container, automatically: the fleet ``watch --containers`` probes from.

:class:`ContainerFleet` follows one or more Docker daemons: ``start()``
subscribes to each daemon's container ``start``/``die``/``destroy`` events
first and lists the running containers second (a container that starts in
between is seen twice, never missed), then one owned thread per daemon reads
its stream and hands each change to a sink: :class:`Started` (with what
``inspect`` says: PID, name, image, labels) for a container the filter keeps,
:class:`Ended` (exit code when the daemon gives it) for any container that
ends; :class:`Lost` when a daemon's stream ends. ``stop()`` closes the
streams and joins the threads.

The engine turns these into probe workers (:mod:`netsleuth.watch.engine`).
A container's end is not an outage: the engine records it as ``target-ended``
and stops its worker, and it holds a container's failed attempts until the
container is seen alive after them (:func:`settle_held`): failures recorded
between its last sighting alive and the exit of its init process belong to
its ending (the network is torn down only after the init exits), not to the
network.

The pure parts: :func:`parse_container_filters` (``label=KEY[=VALUE]``,
``name=GLOB`` or a bare glob), :func:`container_info` (inspect document ->
:class:`ContainerInfo`), :func:`change_of_event` (an Engine API event -> what
it means for the fleet), :func:`target_label` (``container:NAME``, or
``container:NAME@DAEMON`` when another daemon already has a container of that
name) and :func:`container_fact` (what the store keeps beside the series).
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from netsleuth.docker.events import DaemonStreams
from netsleuth.errors import InvalidArgument
from netsleuth.model import Outcome, ProbeResult

__all__ = [
    "FACT_KIND",
    "ContainerFilter",
    "ContainerFleet",
    "ContainerInfo",
    "Ended",
    "FleetChange",
    "Lost",
    "Started",
    "change_of_event",
    "container_fact",
    "container_info",
    "info_from_event",
    "parse_container_filters",
    "settle_held",
    "split_held",
    "target_label",
]

FACT_KIND = "container"
"""The kind of the store facts that describe each container's life."""

MAX_LABELS = 16
MAX_LABEL_VALUE = 120
_EVENTS = ("start", "die", "destroy")


@dataclass(frozen=True, slots=True)
class ContainerFilter:
    """Which containers to probe from. ``names``: globs, any may match;
    ``labels``: ``(KEY, VALUE or None for any value)``, all must match. No
    filter at all keeps every container (Docker's own ``--filter`` rules)."""

    names: tuple[str, ...] = ()
    labels: tuple[tuple[str, str | None], ...] = ()

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.names and not any(fnmatch.fnmatchcase(name, g) for g in self.names):
            return False
        return all(
            key in labels and (value is None or labels[key] == value) for key, value in self.labels
        )

    @property
    def keys(self) -> tuple[str, ...]:
        """The label keys the filter looks at (always stored)."""
        return tuple(key for key, _ in self.labels)

    def describe(self) -> str:
        parts = [f"name {' or '.join(self.names)}"] if self.names else []
        parts += [f"label {k}" if v is None else f"label {k}={v}" for k, v in self.labels]
        return " and ".join(parts) or "every container"


_FILTER_HELP = "use label=KEY, label=KEY=VALUE, name=GLOB or a bare name glob"


def parse_container_filters(texts: Iterable[str]) -> ContainerFilter:
    """Pure: ``--containers`` values -> a filter. Empty values (a bare
    ``--containers``) add nothing."""
    names: list[str] = []
    labels: list[tuple[str, str | None]] = []
    for raw in texts:
        text = raw.strip()
        if not text:
            continue
        kind, eq, rest = text.partition("=")
        if not eq:
            names.append(text.lstrip("/"))  # docker names carry a leading slash in inspect
        elif kind == "name":
            if not rest:
                raise InvalidArgument(f"--containers {raw!r}: name= needs a glob; {_FILTER_HELP}")
            names.append(rest.lstrip("/"))
        elif kind == "label":
            key, has_value, value = rest.partition("=")
            if not key:
                raise InvalidArgument(f"--containers {raw!r}: label= needs a KEY; {_FILTER_HELP}")
            labels.append((key, value if has_value else None))
        else:
            raise InvalidArgument(f"--containers {raw!r}: unknown filter {kind!r}; {_FILTER_HELP}")
    return ContainerFilter(tuple(names), tuple(labels))


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One running container of one daemon, as ``inspect`` describes it."""

    daemon: str
    id: str
    name: str
    image: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    pid: int = 0  # 0: not running (any more)
    started: str = ""  # the daemon's State.StartedAt


def container_info(attrs: Mapping[str, Any], daemon: str) -> ContainerInfo:
    """Pure: the Engine API's inspect document -> :class:`ContainerInfo`."""
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    running = bool(state.get("Running"))
    return ContainerInfo(
        daemon=daemon,
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str(config.get("Image") or attrs.get("Image") or ""),
        labels={str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
        pid=int(state.get("Pid") or 0) if running else 0,
        started=str(state.get("StartedAt") or ""),
    )


def info_from_event(raw: Mapping[str, Any], daemon: str) -> ContainerInfo:
    """Pure: what a container event's attributes say (name, image, and the
    container's labels beside them), for a container gone before ``inspect``."""
    actor = raw.get("Actor") or {}
    attrs = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
    name = attrs.pop("name", "")
    image = attrs.pop("image", "")
    for key in ("exitCode", "signal", "execDuration"):
        attrs.pop(key, None)
    return ContainerInfo(daemon, str(actor.get("ID") or raw.get("id") or ""), name, image, attrs)


@dataclass(frozen=True, slots=True)
class Started:
    """A container the filter keeps is running (listed at the start, or started)."""

    info: ContainerInfo


@dataclass(frozen=True, slots=True)
class Ended:
    """A container ended (``die``; ``destroy`` when no ``die`` was seen)."""

    daemon: str
    id: str
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class Lost:
    """A daemon's event stream ended: its containers are no longer followed."""

    daemon: str
    reason: str


FleetChange = Started | Ended | Lost


def change_of_event(raw: Mapping[str, Any], daemon: str) -> tuple[str, str, int | None] | None:
    """Pure: one decoded Engine API event -> ``("start" | "end", container id,
    exit code)``, or None when it does not change the fleet."""
    if str(raw.get("Type") or "container") != "container":
        return None
    action = str(raw.get("Action") or raw.get("status") or "")
    actor = raw.get("Actor") or {}
    cid = str(actor.get("ID") or raw.get("id") or "")
    if not cid:
        return None
    if action == "start":
        return ("start", cid, None)
    if action in ("die", "destroy"):
        attrs = actor.get("Attributes") or {}
        code = attrs.get("exitCode")
        try:
            exit_code = int(code) if code is not None else None
        except (TypeError, ValueError):
            exit_code = None
        return ("end", cid, exit_code)
    return None


def target_label(name: str, daemon: str, owners: Mapping[str, str]) -> str:
    """Pure: the target label of a container: ``container:NAME``, unless that
    label already belongs to a container of another daemon (``owners``: label
    -> daemon); then ``container:NAME@DAEMON``. A later container of the same
    name on the same daemon gets the same label: the same series."""
    base = f"container:{name}"
    owner = owners.get(base)
    return base if owner is None or owner == daemon else f"{base}@{daemon}"


def stored_labels(labels: Mapping[str, str], keep: Sequence[str] = ()) -> dict[str, str]:
    """The labels kept beside a series: those the filter names, then the
    others in key order up to :data:`MAX_LABELS`, values shortened."""
    keys = [k for k in keep if k in labels]
    keys += [k for k in sorted(labels) if k not in keys]
    return {k: labels[k][:MAX_LABEL_VALUE] for k in keys[: max(MAX_LABELS, len(keep))]}


def container_fact(
    info: ContainerInfo,
    *,
    event: str,
    life: int,
    exit_code: int | None = None,
    keep_labels: Sequence[str] = (),
) -> dict[str, Any]:
    """Pure: the data of a ``container`` fact (``event``: ``started`` or ``ended``)."""
    data: dict[str, Any] = {
        "event": event,
        "name": info.name,
        "id": info.id,
        "image": info.image,
        "daemon": info.daemon,
        "life": life,
    }
    if event == "started":
        data["labels"] = stored_labels(info.labels, keep_labels)
        data["pid"] = info.pid
        data["started"] = info.started
    elif exit_code is not None:
        data["exit_code"] = exit_code
    return data


_NOT_FAILED = (Outcome.OK, Outcome.NXDOMAIN, Outcome.TARGET_GONE)


def split_held(results: Iterable[ProbeResult]) -> tuple[list[ProbeResult], list[ProbeResult]]:
    """Pure: a container's results -> (deliver now, hold until it is seen
    alive): its failed attempts are held."""
    now: list[ProbeResult] = []
    held: list[ProbeResult] = []
    for r in results:
        (now if r.outcome in _NOT_FAILED else held).append(r)
    return now, held


def settle_held(held: Sequence[ProbeResult], alive: bool) -> list[ProbeResult]:
    """Pure: the held failures to record. Alive (its init process is still
    there after they came back): they are the network's, all of them. Not
    alive: the container ended meanwhile, and the failures since it was last
    seen alive are its ending's (its network is torn down after its init
    exits): none."""
    return list(held) if alive else []


class ContainerFleet(DaemonStreams):
    """Follow the containers of one or more daemons and hand each change to
    ``sink`` (called from the reader threads). After ``start()``, ``initial``
    holds the running containers the filter keeps; ``errors`` collects what
    went wrong per daemon. Use as a context manager."""

    def __init__(
        self,
        hosts: Sequence[str],
        keep: ContainerFilter,
        sink: Callable[[FleetChange], None],
        *,
        client_factory: Callable[[str], Any] | None = None,
        join_timeout: float = 5.0,
    ) -> None:
        super().__init__(hosts, client_factory, join_timeout)
        self.keep = keep
        self._sink = sink
        self.initial: list[ContainerInfo] = []

    def start(self) -> None:
        filters = {"type": ["container"], "event": list(_EVENTS)}
        try:
            for host in self.hosts:
                stream = self._stream(self._client(host), filters)
                calls = self._client(host)  # inspect beside the open stream
                for entry in calls.api.containers(filters={"status": "running"}):
                    info = self._inspect(calls, host, str(entry.get("Id", "")))
                    if info is not None and info.pid:
                        self.initial.append(info)
                self._reader(f"containers:{host}", self._read, host, stream, calls)
        except BaseException:
            self.stop()
            raise
        self._start_readers()

    def _inspect(
        self, client: Any, host: str, cid: str, raw: Mapping[str, Any] | None = None
    ) -> ContainerInfo | None:
        """The container if the filter keeps it (None: not kept). One removed
        before we asked (a quick ``run --rm``) is described by its event ``raw``."""
        from netsleuth.docker.client import api_errors

        try:
            info = container_info(client.api.inspect_container(cid), host)
        except api_errors():
            if raw is None:
                return None
            info = info_from_event(raw, host)
        return info if self.keep.matches(info.name, info.labels) else None

    def _read(self, host: str, stream: Any, client: Any) -> None:
        reason = "stream ended"
        try:
            for raw in stream:  # ends when stop() closes the stream or the daemon goes
                if self._stopping.is_set():
                    return
                change = change_of_event(raw, host)
                if change is None:
                    continue
                what, cid, code = change
                if what == "start":
                    info = self._inspect(client, host, cid, raw)
                    if info is not None:
                        self._sink(Started(info))
                else:
                    self._sink(Ended(host, cid, code))
        except Exception as exc:  # noqa: BLE001  (a dying daemon resets the stream)
            if self._stopping.is_set():
                return
            reason = f"{type(exc).__name__}: {exc}"[:200]
        if not self._stopping.is_set():
            self.errors.append(f"{host}: {reason}")
            with contextlib.suppress(Exception):
                self._sink(Lost(host, reason))
