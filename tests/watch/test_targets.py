"""Target specs and where they are (pure parsing; our own namespace needs no root)."""

from __future__ import annotations

import pytest

from netsleuth.errors import InvalidArgument
from netsleuth.watch.targets import Target, parse_target


@pytest.mark.parametrize(
    ("text", "kind", "ref", "label"),
    [
        ("host", "host", "", "host"),
        ("netns:blue", "netns", "blue", "netns:blue"),
        ("pid:4242", "pid", "4242", "pid:4242"),
        ("container:ci-runner", "container", "ci-runner", "container:ci-runner"),
    ],
)
def test_every_target_form(text: str, kind: str, ref: str, label: str) -> None:
    t = parse_target(text, docker_host="unix:///run/d.sock")
    assert (t.kind, t.ref, t.label) == (kind, ref, label)
    assert t.docker_host == ("unix:///run/d.sock" if kind == "container" else None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blue", "expected host, netns:NAME"),
        ("netns:", "expected host, netns:NAME"),
        ("pid:abc", "PID must be a number"),
        ("vm:x", "unknown kind 'vm'"),
    ],
)
def test_bad_targets_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as e:
        parse_target(text)
    assert "\n" not in str(e.value)


def test_our_own_namespace_is_found_and_a_missing_one_is_not() -> None:
    loc = Target("host").locate()
    assert loc is not None and loc.path is None and loc.identity[1] > 0
    assert Target("netns", "nslt-surely-not-there").locate() is None
    assert Target("pid", "999999999").locate() is None
