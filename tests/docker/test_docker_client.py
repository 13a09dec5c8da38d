"""The one Docker client: a daemon that does not answer is one line naming
its address, with no chained traceback behind it."""

from __future__ import annotations

import socket
import traceback
from pathlib import Path

import pytest

from netsleuth.docker import DaemonUnreachable, api_errors, connect, resolve_container
from netsleuth.errors import NetsleuthError


def _check(exc: DaemonUnreachable, host: str) -> None:
    text = str(exc)
    assert "\n" not in text and text.startswith(f"cannot reach the Docker daemon at {host} (")
    assert "check --docker-host" in text and exc.docker_host == host
    assert exc.__cause__ is None and exc.__suppress_context__
    assert "".join(traceback.format_exception_only(exc)).count("\n") == 1


def test_no_socket_is_one_line(tmp_path: Path) -> None:
    host = f"unix://{tmp_path / 'docker.sock'}"
    with pytest.raises(DaemonUnreachable) as info:
        connect(host, timeout=2)
    _check(info.value, host)
    with pytest.raises(DaemonUnreachable) as again:  # the same error through the resolver
        resolve_container(host, "web")
    _check(again.value, host)


def test_a_socket_that_is_no_daemon_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)  # accepts, never answers HTTP; closed before the timeout
        host = f"unix://{path}"
        with pytest.raises(DaemonUnreachable) as info:
            connect(host, timeout=1)
    _check(info.value, host)


def test_api_errors_cover_the_unreachable_daemon() -> None:
    errors = api_errors()
    assert DaemonUnreachable in errors and OSError in errors
    assert issubclass(DaemonUnreachable, NetsleuthError)
