"""One shallow exception root. Every error a user can cause or fix carries a
one-line message that says what to do; the CLI prints it and exits non-zero.
Expected failures of the network (a DNS timeout) are data, not exceptions."""

from __future__ import annotations

__all__ = [
    "DependencyMissing",
    "InvalidArgument",
    "NetsleuthError",
    "NotPermitted",
    "StoreError",
    "TargetNotFound",
]


class NetsleuthError(Exception):
    """Base of every error netsleuth reports to the user as one line."""

    exit_code = 1


class InvalidArgument(NetsleuthError):
    """A command-line value or spec that cannot be used as given."""

    exit_code = 2


class NotPermitted(NetsleuthError):
    """The operation needs privileges this process does not have."""


class DependencyMissing(NetsleuthError):
    """A program or module netsleuth needs is not installed."""

    def __init__(self, program: str, package: str) -> None:
        super().__init__(
            f"{program} is not on PATH; install the Debian package {package} "
            "(scripts/setup does it), or add its directory (e.g. /usr/sbin) to PATH"
        )
        self.program = program
        self.package = package


class TargetNotFound(NetsleuthError):
    """A namespace, process, container or interface that does not exist."""


class StoreError(NetsleuthError):
    """The store cannot be opened, is corrupt, or was written by a newer netsleuth."""
