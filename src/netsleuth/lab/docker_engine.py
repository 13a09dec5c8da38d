"""The lab with a real Docker engine (``lab run|compare|demo --engine docker``).

:class:`DockerEngine` starts a throwaway dockerd in the lab's "host"
namespace on the lab bridge — the reference's second daemon on a bridge made
by hand — with its own roots and socket, no firewall/forwarding/masquerading
of its own (the lab's nftables NAT serves it), container addresses from
``198.18.0.128/25`` (clear of the lab's own 198.18.0.10+N) and the lab's
upstream DNS server in every container's resolv.conf.
:meth:`DockerEngine.start_probe_container` starts the real container the
watch engine probes from; :class:`DockerChurn` is the reference's Jenkins
stand-in, a bounded loop of ``docker run --rm IMAGE sleep T_IN``, with the
same interface and step log as the veth :class:`~netsleuth.lab.churn.Churn`.

Typical use::

    with build_lab(LabConfig(containers=0)) as topo, DockerEngine(topo) as engine:
        probe = engine.start_probe_container()      # target "container:probe"
        with DockerChurn(topo, t_in=2.0, t_out=1.0, duration=60):
            ...  # watch probe.target with docker_hosts=(engine.host,)

The daemon's ID is the lab's run ID (``/run/netsleuth/docker/<run id>``), so
a churn finds its daemon from the topology alone.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from netsleuth.docker import (
    BUSYBOX_IMAGE,
    DockerDaemon,
    api_errors,
    clean_stale_daemons,
    connect,
    daemon_paths,
    ensure_image,
    resolve_container,
)
from netsleuth.errors import InvalidArgument, NetsleuthError
from netsleuth.lab.background import BackgroundLoop
from netsleuth.lab.churn import ChurnStep
from netsleuth.lab.topology import LabTopology
from netsleuth.lifecycle import StartStop
from netsleuth.netns import Links, Namespace

__all__ = [
    "HIGH_PORT_MAC",
    "LAB_DOCKER_CIDR",
    "DockerChurn",
    "DockerEngine",
    "ProbeContainer",
    "docker_host_of",
    "set_port_mac",
]

LAB_DOCKER_CIDR = "198.18.0.128/25"
HIGH_PORT_MAC = "fe:ff:ff:ff:ff:fe"  # unicast, locally administered, above any random MAC
PROBE_NAME = "probe"
PROBE_SLEEP = "86400"


def docker_host_of(topo: LabTopology) -> str:
    """The socket of the lab's daemon (its ID is the lab's run ID)."""
    return daemon_paths(topo.run_id).host


@dataclass(frozen=True, slots=True)
class ProbeContainer:
    """The lab's probing container, as the watch engine needs it."""

    name: str
    id: str
    pid: int
    docker_host: str

    @property
    def netns_path(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    @property
    def target(self) -> str:
        """The ``--target`` spelling (give ``docker_host`` as ``--docker-host``)."""
        return f"container:{self.name}"


class DockerEngine(StartStop):
    """A throwaway dockerd for one lab; stops and wipes it on exit.

    Starting it first cleans daemons left by killed runs. ``start_seconds``
    is how long dockerd took to answer its API; ``storage_driver`` which
    driver it runs (overlay2, or vfs where overlay2 does not work).
    """

    def __init__(self, topo: LabTopology, *, storage_driver: str | None = None) -> None:
        self.topo = topo
        self.daemon = DockerDaemon(
            topo.host_ns,
            topo.bridge,
            daemon_id=topo.run_id,
            storage_driver=storage_driver,
            fixed_cidr=LAB_DOCKER_CIDR,
            dns=[topo.dns_server],
        )
        self._client: Any = None

    @property
    def host(self) -> str:
        return self.daemon.host

    @property
    def storage_driver(self) -> str | None:
        return self.daemon.storage_driver

    @property
    def start_seconds(self) -> float | None:
        return self.daemon.start_seconds

    def start(self) -> None:
        clean_stale_daemons()
        self.daemon.start()
        try:
            self._client = self.daemon.client()
            ensure_image(self._client)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        self.daemon.stop()

    def start_probe_container(
        self, name: str = PROBE_NAME, *, high_port_mac: bool = True
    ) -> ProbeContainer:
        """Start the real container the lab probes from: busybox sleeping on
        the lab bridge, resolv.conf pointing at the lab's upstream DNS server
        (one try, 1 s, like the lab's namespaces). Removed with the daemon.

        ``high_port_mac`` gives its bridge port (the host side of its veth)
        the MAC ``fe:ff:ff:ff:ff:fe``, so that every churn container's port is
        the lowest while attached and moves an unpinned bridge's MAC, as in
        the reference's runs. With False the port keeps its kernel-random MAC
        and a churn container moves the MAC only when its random MAC is lower
        (half of them on average, fewer or more depending on that draw).
        """
        import docker.errors

        if self._client is None:
            raise NetsleuthError("start the Docker engine before its probe container")
        try:
            self._client.containers.run(
                BUSYBOX_IMAGE,
                ["sleep", PROBE_SLEEP],
                name=name,
                detach=True,
                dns=[self.topo.dns_server],
                dns_opt=["timeout:1", "attempts:1"],
            )
        except docker.errors.APIError as exc:
            raise NetsleuthError(f"could not start the probe container {name}: {exc}") from None
        ref = resolve_container(self.host, name, client=self._client)
        probe = ProbeContainer(ref.name, ref.id, ref.pid, self.host)
        if high_port_mac:
            set_port_mac(self.topo.host_ns, probe.netns_path, HIGH_PORT_MAC)
        return probe


def set_port_mac(host_ns: str, container_netns: str, mac: str) -> str:
    """Set the MAC of a container's bridge port: the host end of the veth
    whose other end is the container's eth0. Returns the port's name."""

    def peer_index() -> int:
        with Links() as links:
            return links.link(links.index("eth0")).link

    def set_mac(index: int) -> str:
        with Links() as links:
            links.set(index, mac=mac)
            return links.link(index).name

    index = Namespace.at(container_netns).run(peer_index)
    return Namespace.named(host_ns).run(lambda: set_mac(index))


class DockerChurn(BackgroundLoop):
    """``docker run --rm IMAGE sleep T_IN`` in a bounded loop, ``t_out`` s
    apart, in a thread this context manager owns and joins — the same
    interface as the veth ``Churn``. ``steps`` logs each container's bridge
    port joining (after it started) and leaving (after it was removed).

    Docker gives its veths kernel-random MACs, so only ``mac="random"`` exists
    and ``seed`` (accepted for the veth churn's interface) changes nothing.
    """

    name = "lab-docker-churn"

    def __init__(
        self,
        topo: LabTopology,
        *,
        mac: str = "random",
        t_in: float = 2.0,
        t_out: float = 1.0,
        duration: float = 30.0,
        seed: int | None = None,
        docker_host: str | None = None,
        image: str = BUSYBOX_IMAGE,
    ) -> None:
        if mac != "random":
            raise InvalidArgument(
                f"churn MAC {mac!r} needs the veth engine: Docker picks its veth MACs itself; "
                "use --mac random with --engine docker"
            )
        if t_in <= 0 or t_out < 0 or duration <= 0:
            raise InvalidArgument("churn times must be positive")
        self.topo = topo
        self.mac = mac
        self.t_in = t_in
        self.t_out = t_out
        self.duration = duration
        self.seed = seed
        self.docker_host = docker_host or docker_host_of(topo)
        self.image = image
        self.steps: list[ChurnStep] = []
        self.error: BaseException | None = None
        self.runs = 0
        self._current: Any = None
        self._lock = threading.Lock()
        super().__init__()

    @property
    def cycles(self) -> int:
        return sum(1 for s in self.steps if s.action == "join")

    def stop(self) -> None:
        """Stop after killing the running container (its port leaves at once)."""
        self._stop.set()
        with self._lock:
            current = self._current
        if current is not None:
            self._kill(str(current))
        super().stop()

    def _kill(self, container_id: str) -> None:
        with (
            contextlib.suppress(*api_errors()),
            contextlib.closing(connect(self.docker_host, 5)) as killer,
        ):
            killer.api.kill(container_id)

    def _run(self) -> None:
        deadline = time.monotonic() + self.duration
        try:
            Namespace.named(self.topo.host_ns).run(lambda: self._loop(deadline))
        except api_errors() as exc:  # the daemon is being torn down under us
            self.error = exc
        except NetsleuthError as exc:  # the lab is: stop quietly
            self.error = exc

    def _loop(self, deadline: float) -> None:
        """The runs until ``deadline``, in a thread inside the lab's host
        namespace (where the bridge's ports are)."""
        import docker.errors

        sleep_arg = f"{self.t_in:g}"
        with (
            contextlib.closing(connect(self.docker_host, int(self.t_in) + 30)) as client,
            Links() as links,
        ):
            bridge = links.index(self.topo.bridge)
            while not self._stop.is_set() and time.monotonic() < deadline:
                before = links.ports(bridge)
                container = client.containers.run(
                    self.image, ["sleep", sleep_arg], detach=True, auto_remove=True
                )
                with self._lock:
                    self._current = container.id
                joined = {p: m for p, m in links.ports(bridge).items() if p not in before}
                now = time.monotonic_ns()
                self.steps += [ChurnStep(now, "join", p, m) for p, m in joined.items()]
                self.runs += 1
                if self._stop.is_set():
                    self._kill(str(container.id))
                with contextlib.suppress(docker.errors.NotFound):
                    container.wait(condition="removed")
                with self._lock:
                    self._current = None
                now = time.monotonic_ns()
                after = links.ports(bridge)
                self.steps += [
                    ChurnStep(now, "leave", p, m) for p, m in joined.items() if p not in after
                ]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._stop.wait(min(self.t_out, remaining))
