"""Docker events → NetEvent: the pure conversion on events recorded from a
real dockerd 20.10 (``fixtures/events.jsonl``: a ``run --rm`` and a killed
container), and the reader threads' ownership with a scripted stream."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from netsleuth.docker.events import Clock, DockerEventSource, event_from_docker
from netsleuth.model import DockerDetail, EventKind, NetEvent, NoteDetail

FIXTURE = Path(__file__).parent / "fixtures" / "events.jsonl"
DAEMON = "unix:///run/netsleuth/docker/abc/docker.sock"


def recorded() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def docker(event: NetEvent | None) -> DockerDetail:
    assert event is not None and isinstance(event.detail, DockerDetail)
    return event.detail


def test_container_events_carry_name_action_id_image_daemon() -> None:
    raws = recorded()
    now = raws[-1]["timeNano"] + 1_000_000
    events = [
        event_from_docker(r, DAEMON, wall_now_ns=now, mono_now_ns=5_000_000_000) for r in raws
    ]
    assert all(e is not None for e in events)
    first = events[0]
    assert first is not None
    assert first.kind is EventKind.DOCKER
    assert first.netns == "host"
    assert first.subject == "churn-1"
    assert docker(first).action == "create"
    assert docker(first).image == "netsleuth/busybox:1"
    assert docker(first).daemon == DAEMON
    assert docker(first).id == raws[0]["id"]
    assert docker(first).to_json() == {
        "action": "create",
        "type": "container",
        "daemon": DAEMON,
        "id": raws[0]["id"],
        "image": "netsleuth/busybox:1",
    }
    assert first.wall_ns == raws[0]["timeNano"]
    # the monotonic stamp keeps the daemon's spacing, ending 1 ms before "now"
    assert first.mono_ns == 5_000_000_000 - (now - raws[0]["timeNano"])
    actions = [(docker(e).type, docker(e).action) for e in events if e is not None]
    assert actions[:6] == [
        ("container", "create"),
        ("network", "connect"),
        ("container", "start"),
        ("container", "die"),
        ("network", "disconnect"),
        ("container", "destroy"),
    ]
    kill = next(e for e in events if e is not None and docker(e).action == "kill")
    assert docker(kill).signal == "9"
    died = [e for e in events if e is not None and docker(e).action == "die"]
    assert [docker(d).exit_code for d in died] == [0, 137]
    assert list(docker(died[0]).to_json()) == [
        "action",
        "type",
        "daemon",
        "id",
        "image",
        "exit_code",
    ]


def test_network_events_name_the_container_when_known() -> None:
    raws = recorded()
    connect = raws[1]
    cid = connect["Actor"]["Attributes"]["container"]
    bare = event_from_docker(connect, DAEMON, wall_now_ns=0, mono_now_ns=0)
    named = event_from_docker(connect, DAEMON, wall_now_ns=0, mono_now_ns=0, names={cid: "churn-1"})
    assert bare is not None and named is not None
    assert bare.subject == cid[:12]
    assert named.subject == "churn-1"
    assert docker(named).id == cid
    assert docker(named).network == "bridge"
    assert list(docker(named).to_json()) == [
        "action",
        "type",
        "daemon",
        "id",
        "image",
        "network",
        "network_id",
    ]


def test_not_an_event() -> None:
    assert event_from_docker({}, DAEMON, wall_now_ns=1, mono_now_ns=1) is None


class ScriptedStream:
    """Yields the given events, then blocks like a live stream until closed
    (or ends by itself if ``then_end``)."""

    def __init__(self, raws: list[dict[str, Any]], then_end: bool = False) -> None:
        self.raws = raws
        self.then_end = then_end
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.raws
        if not self.then_end:
            self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


class FakeClient:
    def __init__(self, stream: ScriptedStream) -> None:
        self.stream = stream
        self.api = self
        self.filters: Any = None
        self.closed = False

    def events(self, decode: bool, filters: Any) -> ScriptedStream:
        assert decode
        self.filters = filters
        return self.stream

    def close(self) -> None:
        self.closed = True


def test_source_delivers_names_and_joins_its_threads() -> None:
    raws = recorded()
    clients = {h: FakeClient(ScriptedStream(raws)) for h in ("unix:///a", "unix:///b")}
    got: list[NetEvent] = []
    lock = threading.Lock()
    all_in = threading.Event()

    def sink(event: NetEvent) -> None:
        with lock:
            got.append(event)
            if len(got) == 2 * len(raws):
                all_in.set()

    source = DockerEventSource(list(clients), sink, client_factory=clients.__getitem__)
    with source:
        assert all_in.wait(5)
        threads = list(source._threads)
        assert all(t.is_alive() for t in threads)  # still following live streams
    assert not any(t.is_alive() for t in threads)
    assert all(c.closed and c.stream.closed.is_set() for c in clients.values())
    assert all(c.filters == {"type": ["container", "network"]} for c in clients.values())
    assert source.count == 2 * len(raws)
    assert {docker(e).daemon for e in got} == {"unix:///a", "unix:///b"}
    network = [e for e in got if docker(e).type == "network"]
    assert {e.subject for e in network} == {"churn-1", "probe"}
    assert not any(e.kind is EventKind.NOTE for e in got)


def test_a_stream_that_ends_while_running_leaves_a_note() -> None:
    client = FakeClient(ScriptedStream(recorded()[:1], then_end=True))
    got: list[NetEvent] = []
    done = threading.Event()

    def sink(event: NetEvent) -> None:
        got.append(event)
        if event.kind is EventKind.NOTE:
            done.set()

    clock = Clock(wall_ns=lambda: 7, mono_ns=lambda: 3)
    with DockerEventSource(["unix:///a"], sink, client_factory=lambda h: client, clock=clock):
        assert done.wait(5)
    assert [e.kind for e in got] == [EventKind.DOCKER, EventKind.NOTE]
    note = got[1].detail
    assert isinstance(note, NoteDetail) and note.daemon == "unix:///a"
    assert "ended" in note.message
    assert (got[1].wall_ns, got[1].mono_ns) == (7, 3)


def test_a_failing_sink_ends_only_its_reader_and_is_reported() -> None:
    client = FakeClient(ScriptedStream(recorded()))

    def sink(event: NetEvent) -> None:
        raise RuntimeError("store is closed")

    source = DockerEventSource(["unix:///a"], sink, client_factory=lambda h: client)
    with source:
        for t in list(source._threads):
            t.join(5)
    assert source.errors == ["unix:///a: RuntimeError: store is closed"]
