"""Docker events as :class:`~netsleuth.model.NetEvent`: one reader thread per
daemon, owned and joined by :class:`DockerEventSource`.

Each Engine API event (``/events``) becomes ``NetEvent(kind=DOCKER,
netns="host", subject=<container name>, detail=DockerDetail(action, type,
daemon, id, image, ...))``, stamped with the daemon's own nanosecond time and
the matching CLOCK_MONOTONIC instant. A stream that ends while the source is
running (the daemon stopped) yields one ``NOTE`` event saying so.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netsleuth.lifecycle import StartStop
from netsleuth.model import DockerDetail, EventKind, NetEvent, NoteDetail

__all__ = ["DEFAULT_TYPES", "Clock", "DockerEventSource", "event_from_docker"]

DEFAULT_TYPES = ("container", "network")


@dataclass(frozen=True, slots=True)
class Clock:
    """Wall and monotonic clocks in ns; injectable in tests."""

    wall_ns: Callable[[], int] = time.time_ns
    mono_ns: Callable[[], int] = time.monotonic_ns


def event_from_docker(
    raw: Mapping[str, Any],
    daemon: str,
    *,
    wall_now_ns: int,
    mono_now_ns: int,
    names: Mapping[str, str] | None = None,
) -> NetEvent | None:
    """Pure: one decoded Engine API event → NetEvent (None if it is not an
    event). ``daemon`` is the daemon's address; the ``*_now_ns`` pair maps the
    daemon's wall time onto the monotonic clock. Network connect/disconnect
    events carry only the container's ID: ``names`` (ID → name, from earlier
    container events) turns it into the name."""
    action = str(raw.get("Action") or raw.get("status") or "")
    if not action:
        return None
    etype = str(raw.get("Type") or "container")
    actor = raw.get("Actor") or {}
    attrs: Mapping[str, Any] = actor.get("Attributes") or {}
    actor_id = str(actor.get("ID") or raw.get("id") or "")
    wall = raw.get("timeNano")
    if wall is None:
        wall = int(raw.get("time", 0)) * 1_000_000_000
    wall = int(wall) if wall else wall_now_ns
    mono = mono_now_ns - (wall_now_ns - wall)
    if etype == "network":
        # connect/disconnect: the actor is the network, the container is an attribute.
        container_id = str(attrs.get("container", ""))
        detail = DockerDetail(
            action,
            etype,
            daemon,
            id=container_id,
            network=str(attrs.get("name", "")),
            network_id=actor_id,
        )
        subject = (names or {}).get(container_id) or container_id[:12]
    else:
        detail = DockerDetail(
            action,
            etype,
            daemon,
            id=actor_id,
            image=str(attrs.get("image") or raw.get("from") or ""),
            exit_code=int(attrs["exitCode"]) if "exitCode" in attrs else None,
            signal=str(attrs["signal"]) if "signal" in attrs else None,
        )
        subject = str(attrs.get("name") or actor_id[:12])
    return NetEvent(
        wall_ns=wall,
        mono_ns=mono,
        netns="host",
        kind=EventKind.DOCKER,
        subject=subject,
        detail=detail,
    )


class DaemonStreams(StartStop):
    """The event streams of one or more daemons, one reader thread each: the
    plumbing shared by whatever follows them. A subclass opens its clients and
    streams in ``start()`` (:meth:`_client`, :meth:`_stream`, :meth:`_reader`)
    and reads them in its threads; ``stop()`` closes the streams (which ends
    the readers' loops), joins the threads (bounded by ``join_timeout``) and
    closes the clients."""

    def __init__(
        self,
        hosts: Sequence[str],
        client_factory: Callable[[str], Any] | None,
        join_timeout: float,
    ) -> None:
        self.hosts = list(hosts)
        self._factory = client_factory or _default_client
        self._join_timeout = join_timeout
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: list[Any] = []
        self._clients: list[Any] = []
        self.errors: list[str] = []

    def _client(self, host: str) -> Any:
        client = self._factory(host)
        self._clients.append(client)
        return client

    def _stream(self, client: Any, filters: Mapping[str, Any] | None) -> Any:
        stream = client.api.events(decode=True, filters=filters)
        self._streams.append(stream)
        return stream

    def _reader(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self._threads.append(threading.Thread(target=target, args=args, name=name, daemon=True))

    def _start_readers(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for stream in self._streams:
            with contextlib.suppress(Exception):  # already closed by the daemon
                stream.close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(self._join_timeout)
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._streams.clear()
        self._clients.clear()
        self._threads.clear()


class DockerEventSource(DaemonStreams):
    """Follow the events of one or more daemons and hand each to ``sink``.

    ``start()`` subscribes to every daemon before it returns (no event after
    it is missed), then one thread per daemon reads its stream; ``stop()``
    closes the streams and joins the threads (bounded by ``join_timeout``).
    Use as a context manager. ``sink`` is called from the reader threads;
    exceptions it raises end that reader and are kept in ``errors``.
    """

    def __init__(
        self,
        hosts: Sequence[str],
        sink: Callable[[NetEvent], None],
        *,
        types: Sequence[str] = DEFAULT_TYPES,
        clock: Clock | None = None,
        client_factory: Callable[[str], Any] | None = None,
        join_timeout: float = 5.0,
    ) -> None:
        super().__init__(hosts, client_factory, join_timeout)
        self._sink = sink
        self._types = list(types)
        self._clock = clock or Clock()
        self.count = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        try:
            for host in self.hosts:
                filters = {"type": self._types} if self._types else None
                stream = self._stream(self._client(host), filters)
                self._reader(f"docker-events:{host}", self._read, host, stream)
        except BaseException:
            self.stop()
            raise
        self._start_readers()

    def _read(self, host: str, stream: Any) -> None:
        reason = "stream ended"
        names: dict[str, str] = {}
        try:
            for raw in stream:
                if self._stopping.is_set():
                    return
                event = event_from_docker(
                    raw,
                    host,
                    wall_now_ns=self._clock.wall_ns(),
                    mono_now_ns=self._clock.mono_ns(),
                    names=names,
                )
                if event is not None:
                    detail = event.detail
                    if isinstance(detail, DockerDetail) and detail.type == "container":
                        if detail.action == "destroy":
                            names.pop(detail.id, None)
                        else:
                            names[detail.id] = event.subject
                    with self._lock:
                        self.count += 1
                    self._sink(event)
        except Exception as exc:  # noqa: BLE001  (a dying daemon resets the stream; the sink may raise anything)
            if self._stopping.is_set():
                return
            reason = f"{type(exc).__name__}: {exc}"[:200]
            with self._lock:
                self.errors.append(f"{host}: {reason}")
        if not self._stopping.is_set():
            with contextlib.suppress(Exception):
                self._sink(
                    NetEvent(
                        wall_ns=self._clock.wall_ns(),
                        mono_ns=self._clock.mono_ns(),
                        netns="host",
                        kind=EventKind.NOTE,
                        subject="docker-events",
                        detail=NoteDetail(
                            daemon=host, message=f"docker event stream ended: {reason}"
                        ),
                    )
                )


def _default_client(host: str) -> Any:
    from netsleuth.docker.client import connect

    return connect(host)
