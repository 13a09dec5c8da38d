"""Real Docker: a throwaway dockerd on a bridge that already exists, an
offline image, container → PID/namespace resolution, and Docker events.

How data moves through it:

- :class:`DockerDaemon` (``daemon.py``) starts dockerd inside a network
  namespace through ``_launch.py`` (private mount namespace, sysfs of that
  network namespace, cgroups kept), with its own roots, socket and cgroup
  parent, registered under ``/run/netsleuth/docker/ID`` with its owner's PID
  and start time. Leaving the ``with`` block stops and wipes it;
  :func:`clean_stale_daemons` does the same for daemons whose owner died.
- :func:`ensure_image` (``image.py``) imports a rootfs tarball of Debian's
  static busybox as ``netsleuth/busybox:1``: no registry needed.
- :func:`connect` (``client.py``) is the one way to a daemon's API: the SDK
  client for an address, pinged; :class:`DaemonUnreachable` (one line naming
  the address) when the daemon does not answer.
- :func:`resolve_container` (``resolve.py``) turns a container name or ID on a
  daemon into ``(pid, id, name)``; ``/proc/PID/ns/net`` is its namespace.
- :func:`list_daemons` (``daemons.py``) finds every running dockerd and what
  it was told (socket, ``--bridge``, ``--iptables``, data root, namespace) as
  a :class:`DockerdProcess`, for ``doctor``; the parsing is the pure
  :func:`parse_dockerd`, the one parser of dockerd command lines.
- :class:`DockerEventSource` (``events.py``) follows ``/events`` of one or
  more daemons in owned threads and hands each event to a sink as a
  :class:`~netsleuth.model.NetEvent` of kind ``DOCKER`` (conversion in the
  pure :func:`event_from_docker`), e.g. a ``StoreWriter``.

Everything talks to dockerd through the ``docker`` SDK (Engine API over the
daemon's unix socket); nothing here needs the ``docker`` command.
"""

from netsleuth.docker.client import DaemonUnreachable, api_errors, connect
from netsleuth.docker.daemon import (
    DOCKER_DATA_DIR,
    DOCKER_RUN_DIR,
    DaemonPaths,
    DockerDaemon,
    clean_stale_daemons,
    daemon_paths,
    dockerd_argv,
)
from netsleuth.docker.daemons import DockerdProcess, list_daemons, parse_dockerd
from netsleuth.docker.events import DockerEventSource, event_from_docker
from netsleuth.docker.image import BUSYBOX_IMAGE, ensure_image, rootfs_tar
from netsleuth.docker.resolve import ContainerRef, resolve_container

__all__ = [
    "BUSYBOX_IMAGE",
    "DOCKER_DATA_DIR",
    "DOCKER_RUN_DIR",
    "ContainerRef",
    "DaemonPaths",
    "DaemonUnreachable",
    "DockerDaemon",
    "DockerEventSource",
    "DockerdProcess",
    "api_errors",
    "clean_stale_daemons",
    "connect",
    "daemon_paths",
    "dockerd_argv",
    "ensure_image",
    "event_from_docker",
    "list_daemons",
    "parse_dockerd",
    "resolve_container",
    "rootfs_tar",
]
