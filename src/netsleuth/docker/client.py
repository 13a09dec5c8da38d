"""The one way to a Docker daemon: :func:`connect` builds the SDK client for
a ``unix://`` (or ``tcp://``) address and checks that the daemon answers.

A daemon that is absent, not running or refusing us is one
:class:`DaemonUnreachable` with a one-line message naming the address.
Calls on a connected client can still fail when the daemon goes away
meanwhile; :func:`api_errors` is everything connecting or calling raises
then, for callers to whom the daemon is optional evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netsleuth.errors import NetsleuthError

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["DaemonUnreachable", "api_errors", "connect"]


class DaemonUnreachable(NetsleuthError):
    """The Docker daemon at an address did not answer."""

    def __init__(self, docker_host: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the Docker daemon at {docker_host} ({reason}); "
            "check --docker-host and that dockerd runs"
        )
        self.docker_host = docker_host
        self.reason = reason


def _transport_errors() -> tuple[type[Exception], ...]:
    """The SDK's errors, the HTTP layer's, the socket's."""
    import docker.errors
    import requests

    return (docker.errors.DockerException, requests.RequestException, OSError)


def api_errors() -> tuple[type[Exception], ...]:
    """What connecting, or a call on a connected client, raises when the
    daemon is absent, fails or goes away."""
    return (DaemonUnreachable, *_transport_errors())


def connect(docker_host: str, timeout: int = 10) -> DockerClient:
    """A ``docker.DockerClient`` for ``docker_host`` that has answered a ping
    (close it when done); :class:`DaemonUnreachable` otherwise."""
    import docker

    client = None
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=timeout)
        client.ping()
    except _transport_errors() as exc:
        if client is not None:
            client.close()
        text = str(exc)
        reason = text.splitlines()[0][:160] if text else type(exc).__name__
        raise DaemonUnreachable(docker_host, reason) from None
    return client
