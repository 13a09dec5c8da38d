"""`netsleuth doctor`: not implemented yet (filed as its own issue)."""

from __future__ import annotations

import argparse
from typing import Any

from netsleuth.cli._common import not_implemented


def add_parser(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("doctor", help="(not implemented yet)")
    parser.set_defaults(handler=not_implemented("doctor"))
