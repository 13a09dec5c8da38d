"""Container → PID and network namespace, through the Docker Engine API.

The PID is the container's init process as the machine's PID namespace sees
it (dockerd runs there), so ``/proc/PID/ns/net`` is the container's network
namespace wherever dockerd itself runs. Resolve again after a restart: the
PID changes, the ID and name do not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from netsleuth.docker.client import connect
from netsleuth.errors import NetsleuthError, TargetNotFound

__all__ = ["ContainerRef", "container_ref", "resolve_container"]


class ContainerRef(NamedTuple):
    """A running container: ``pid, id, name = ref`` unpacks it."""

    pid: int
    id: str
    name: str

    @property
    def netns_path(self) -> Path:
        return Path(f"/proc/{self.pid}/ns/net")


def container_ref(attrs: dict[str, Any], docker_host: str, asked: str) -> ContainerRef:
    """Pure: a ContainerRef from the API's inspect document, or
    TargetNotFound if the container is not running."""
    state = attrs.get("State") or {}
    name = str(attrs.get("Name", "")).lstrip("/") or asked
    pid = int(state.get("Pid") or 0)
    if not state.get("Running") or pid <= 0:
        status = state.get("Status", "not running")
        raise TargetNotFound(
            f"container {name} on {docker_host} is {status}; start it "
            f"(docker -H {docker_host} start {name}) or pick a running one"
        )
    return ContainerRef(pid, str(attrs["Id"]), name)


def resolve_container(
    docker_host: str, name_or_id: str, *, client: Any | None = None
) -> ContainerRef:
    """PID, full ID and name of a running container, by name or (prefix of) ID.

    Pass ``client`` to reuse a connection; otherwise one is opened and closed.
    """
    import docker.errors
    import requests

    own = client is None
    api = connect(docker_host) if client is None else client
    try:
        try:
            container = api.containers.get(name_or_id)
        except docker.errors.NotFound:
            raise TargetNotFound(
                f"no container {name_or_id} on {docker_host}; list them with "
                f"docker -H {docker_host} ps"
            ) from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise NetsleuthError(
                f"the Docker daemon at {docker_host} failed to inspect {name_or_id} "
                f"({str(exc).splitlines()[0][:160]})"
            ) from None
        return container_ref(container.attrs, docker_host, name_or_id)
    finally:
        if own:
            api.close()
