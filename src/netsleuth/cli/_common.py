"""Helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from netsleuth.errors import InvalidArgument, NotPermitted

__all__ = ["not_implemented", "positive_float", "positive_int", "require_root"]


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise NotPermitted(f"{what} needs root (network namespaces, netlink); run it with sudo")


def not_implemented(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(f"netsleuth: {name} is not implemented yet", file=sys.stderr)
        return 2

    return handler


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message)
