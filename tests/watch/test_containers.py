"""The fleet's pure decisions: filters, inspect documents, events, labels,
held failures, facts and their reading back; the fleet's threads on a fake
client (the real daemon: tests/docker/test_watch_containers.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from netsleuth.analysis.containers import container_lives, ended_count
from netsleuth.errors import InvalidArgument
from netsleuth.model import EndDetail, EventKind, NetEvent, Outcome, ProbeResult, detail_from_json
from netsleuth.watch import WatchConfig
from netsleuth.watch.containers import (
    ContainerFilter,
    ContainerFleet,
    ContainerInfo,
    Ended,
    FleetChange,
    Lost,
    Started,
    change_of_event,
    container_fact,
    container_info,
    info_from_event,
    parse_container_filters,
    settle_held,
    split_held,
    stored_labels,
    target_label,
)


def test_filters_parse_and_match_like_docker() -> None:
    f = parse_container_filters(["", "label=ci", "label=team=net", "name=build-*", "/job-?"])
    assert f == ContainerFilter(("build-*", "job-?"), (("ci", None), ("team", "net")))
    both = {"ci": "", "team": "net"}
    assert f.matches("build-7", both) and f.matches("job-1", both)
    assert not f.matches("test-1", both)  # no name glob matches
    assert not f.matches("build-7", {"ci": "1"})  # every label must match
    assert not f.matches("build-7", {"ci": "1", "team": "web"})
    assert parse_container_filters([""]).matches("anything", {})  # bare --containers: all
    assert f.keys == ("ci", "team")
    assert f.describe() == "name build-* or job-? and label ci and label team=net"


@pytest.mark.parametrize(
    ("text", "why"),
    [("label=", "needs a KEY"), ("name=", "needs a glob"), ("image=x", "unknown filter 'image'")],
)
def test_bad_filters_are_one_line_errors(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why) as info:
        parse_container_filters([text])
    assert "\n" not in str(info.value) and "label=KEY" in str(info.value)
    with pytest.raises(InvalidArgument, match=why):
        WatchConfig(targets=(), probes=("dns:x",), containers=(text,)).validate()


def test_watch_needs_a_target_unless_containers() -> None:
    with pytest.raises(InvalidArgument, match="--target"):
        WatchConfig(targets=(), probes=("dns:x",)).validate()
    WatchConfig(targets=(), probes=("dns:x",), containers=()).validate()


def test_container_info_from_inspect_and_from_event() -> None:
    attrs = {
        "Id": "abc123",
        "Name": "/ci-7",
        "Image": "sha256:ff",
        "Config": {"Image": "busybox:1", "Labels": {"ci": "1"}},
        "State": {"Running": True, "Pid": 4242, "StartedAt": "2026-05-01T22:00:00Z"},
    }
    info = container_info(attrs, "unix:///run/d.sock")
    assert info == ContainerInfo(
        "unix:///run/d.sock", "abc123", "ci-7", "busybox:1", {"ci": "1"}, 4242,
        "2026-05-01T22:00:00Z",
    )  # fmt: skip
    stopped = container_info({**attrs, "State": {"Running": False, "Pid": 0}}, "d")
    assert stopped.pid == 0
    raw = {
        "Type": "container",
        "Action": "start",
        "Actor": {"ID": "abc123", "Attributes": {"name": "ci-7", "image": "busybox:1", "ci": "1"}},
    }
    assert info_from_event(raw, "d") == ContainerInfo(
        "d", "abc123", "ci-7", "busybox:1", {"ci": "1"}
    )


def test_events_that_change_the_fleet() -> None:
    def event(action: str, **attrs: str) -> dict[str, Any]:
        return {"Type": "container", "Action": action, "Actor": {"ID": "c1", "Attributes": attrs}}

    assert change_of_event(event("start"), "d") == ("start", "c1", None)
    assert change_of_event(event("die", exitCode="137"), "d") == ("end", "c1", 137)
    assert change_of_event(event("destroy"), "d") == ("end", "c1", None)
    assert change_of_event(event("die", exitCode="x"), "d") == ("end", "c1", None)
    for ignored in (event("create"), event("kill"), {"Type": "network", "Action": "connect"}):
        assert change_of_event(ignored, "d") is None
    assert change_of_event({"Type": "container", "Action": "start", "Actor": {}}, "d") is None


def test_labels_are_names_and_disambiguated_by_daemon() -> None:
    owners: dict[str, str] = {}
    assert target_label("build", "unix:///a.sock", owners) == "container:build"
    owners["container:build"] = "unix:///a.sock"
    assert target_label("build", "unix:///a.sock", owners) == "container:build"  # same series
    assert target_label("build", "unix:///b.sock", owners) == "container:build@unix:///b.sock"


def _result(outcome: Outcome, t: int = 0) -> ProbeResult:
    return ProbeResult(t, t, "container:x", "dns:a/A", "198.18.0.1", outcome)


def test_failures_are_held_until_the_container_is_seen_alive() -> None:
    batch = [_result(Outcome.OK, 1), _result(Outcome.TIMEOUT, 2), _result(Outcome.NXDOMAIN, 3)]
    batch.append(_result(Outcome.UNREACHABLE, 4))
    now, held = split_held(batch)
    assert [r.wall_ns for r in now] == [1, 3]
    assert [r.wall_ns for r in held] == [2, 4]
    assert settle_held(held, alive=True) == held  # the network's: recorded
    assert settle_held(held, alive=False) == []  # the ending's: dropped


def test_facts_keep_labels_the_filter_names_first() -> None:
    labels = {f"k{i:02d}": "v" * 300 for i in range(30)} | {"zz-ci": "1"}
    kept = stored_labels(labels, ("zz-ci",))
    assert len(kept) == 16 and kept["zz-ci"] == "1" and len(kept["k00"]) == 120
    info = ContainerInfo("d", "id1", "ci-7", "busybox:1", {"ci": "1"}, 42, "t0")
    start = container_fact(info, event="started", life=1)
    assert start == {
        "event": "started", "name": "ci-7", "id": "id1", "image": "busybox:1", "daemon": "d",
        "life": 1, "labels": {"ci": "1"}, "pid": 42, "started": "t0",
    }  # fmt: skip
    end = container_fact(info, event="ended", life=1, exit_code=0)
    assert end["exit_code"] == 0 and "labels" not in end


def test_lives_read_back_from_facts() -> None:
    info = ContainerInfo("d", "id1", "ci-7", "busybox:1", {"ci": "1"}, 42)

    def fact(wall: int, data: dict[str, Any], target: str = "container:ci-7") -> dict[str, Any]:
        return {"run": 1, "wall_ns": wall, "netns": target, "kind": "container", "data": data}

    facts = [
        fact(10, container_fact(info, event="started", life=1)),
        fact(20, container_fact(info, event="ended", life=1, exit_code=137)),
        fact(30, container_fact(info, event="started", life=2)),  # restarted: same series
        {"run": 1, "wall_ns": 5, "netns": "host", "kind": "host", "data": {}},
        fact(40, {"event": "started", "life": "x"}),  # not this version's: skipped
    ]
    lives = container_lives(facts)
    assert [(c.life, c.started_ns, c.ended_ns, c.exit_code) for c in lives] == [
        (1, 10, 20, 137),
        (2, 30, None, None),
    ]
    assert {c.target for c in lives} == {"container:ci-7"} and lives[0].labels == {"ci": "1"}
    assert ended_count(lives) == 1


def test_end_detail_round_trips() -> None:
    detail = EndDetail("d", "id1", "busybox:1", 0)
    assert detail_from_json(EventKind.TARGET_ENDED, detail.to_json()) == detail
    assert NetEvent(0, 0, "container:x", EventKind.TARGET_ENDED).detail == EndDetail()


class _Stream:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.closed = threading.Event()

    def __iter__(self) -> Any:
        yield from self.events
        self.closed.wait(5)  # a live stream blocks until closed

    def close(self) -> None:
        self.closed.set()


class _Api:
    def __init__(self, stream: _Stream, docs: dict[str, dict[str, Any]], listed: set[str]) -> None:
        self.stream, self.docs, self.listed = stream, docs, listed

    def events(self, decode: bool, filters: dict[str, Any]) -> _Stream:
        assert decode and filters == {"type": ["container"], "event": ["start", "die", "destroy"]}
        return self.stream

    def containers(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"Id": cid} for cid in sorted(self.listed)]

    def inspect_container(self, cid: str) -> dict[str, Any]:
        if cid not in self.docs:
            raise OSError("no such container")
        return self.docs[cid]


class _Client:
    def __init__(self, api: _Api) -> None:
        self.api = api

    def close(self) -> None:
        pass


def _doc(cid: str, name: str, labels: dict[str, str], running: bool = True) -> dict[str, Any]:
    return {
        "Id": cid,
        "Name": f"/{name}",
        "Config": {"Image": "busybox:1", "Labels": labels},
        "State": {"Running": running, "Pid": 100 if running else 0},
    }


def test_fleet_lists_then_follows_and_keeps_what_the_filter_keeps() -> None:
    docs = {"r1": _doc("r1", "ci-old", {"ci": "1"}), "o1": _doc("o1", "web", {})}
    docs["n1"] = _doc("n1", "ci-new", {"ci": "1"})
    die = {"ID": "n1", "Attributes": {"exitCode": "0"}}
    events = [
        {"Type": "container", "Action": "start", "Actor": {"ID": "n1"}},
        {"Type": "container", "Action": "start", "Actor": {"ID": "o1"}},  # left out
        {  # gone before inspect: described by its event
            "Type": "container",
            "Action": "start",
            "Actor": {"ID": "q1", "Attributes": {"name": "ci-quick", "ci": "1"}},
        },
        {"Type": "container", "Action": "die", "Actor": die},
    ]
    api = _Api(_Stream(events), docs, {"r1", "o1"})  # n1 starts after the listing
    got: list[FleetChange] = []
    done = threading.Event()

    def sink(change: FleetChange) -> None:
        got.append(change)
        if isinstance(change, Ended):
            done.set()

    fleet = ContainerFleet(
        ["d"], parse_container_filters(["label=ci"]), sink, client_factory=lambda h: _Client(api)
    )
    with fleet:
        assert [i.name for i in fleet.initial] == ["ci-old"]
        assert done.wait(5)
    started = [c.info.name for c in got if isinstance(c, Started)]
    assert started == ["ci-new", "ci-quick"]
    assert Ended("d", "n1", 0) in got
    assert not [c for c in got if isinstance(c, Lost)]  # stopped by us: not lost
