"""The HTTP endpoint Prometheus scrapes: ``GET /metrics`` on one address.

Loopback by default. To let a Prometheus server on another machine scrape it,
listen on an address of the host that it can reach (``--metrics
10.0.0.5:9477``) and restrict who can connect with the host firewall; see
docs/fleet.md.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.registry import CollectorRegistry

from netsleuth.errors import InvalidArgument, NetsleuthError
from netsleuth.lifecycle import Closing

__all__ = ["DEFAULT_ADDR", "DEFAULT_PORT", "MetricsServer", "parse_addr", "serve"]

DEFAULT_PORT = 9477
DEFAULT_ADDR = f"127.0.0.1:{DEFAULT_PORT}"

_HINT = "give HOST:PORT, e.g. 127.0.0.1:9477 or [::1]:9477"


def parse_addr(addr: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` / ``[V6]:PORT`` into host and port (0 = any free port)."""
    text = addr.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise InvalidArgument(f"bad metrics address {addr!r}: {_HINT}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise InvalidArgument(f"bad metrics address {addr!r}: {_HINT}")
    if not host:
        raise InvalidArgument(
            f"bad metrics address {addr!r}: name the host to listen on "
            "(127.0.0.1 keeps it local; 0.0.0.0 exposes it on every interface)"
        )
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InvalidArgument(f"bad metrics port in {addr!r}: use a number from 0 to 65535")
    return host, int(port_text)


class MetricsServer(Closing):
    """A running endpoint; :meth:`close` stops it and joins its thread."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        sockname = httpd.socket.getsockname()
        self.host: str = sockname[0]
        self.port: int = sockname[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def serve(addr: str = DEFAULT_ADDR, registry: CollectorRegistry = REGISTRY) -> MetricsServer:
    """Serve ``registry`` on ``addr`` (``HOST:PORT``) from a background thread.

    Raises :class:`NetsleuthError` with one line that says what to do when the
    address is malformed, not on this host, or in use.
    """
    host, port = parse_addr(addr)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise InvalidArgument(
                f"cannot resolve metrics host {host!r}: use an IP address such as 127.0.0.1"
            ) from None
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise NetsleuthError(
                f"metrics address {host}:{port} is already in use; "
                "pick another port with --metrics HOST:PORT"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise NetsleuthError(
                f"no interface of this host has the address {host}; "
                "listen on 127.0.0.1 or on one of the host's addresses"
            ) from None
        if exc.errno == errno.EACCES:
            raise NetsleuthError(
                f"not allowed to listen on port {port}; use a port above 1023 or run as root"
            ) from None
        raise NetsleuthError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return MetricsServer(httpd, thread)
