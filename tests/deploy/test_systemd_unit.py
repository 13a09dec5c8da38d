"""The systemd unit as shipped verifies, with the netsleuth it runs
(/usr/local/bin/netsleuth, linked by scripts/setup) in place."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "netsleuth-watch.service"
BIN = Path("/usr/local/bin/netsleuth")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_unit_verifies_with_the_linked_netsleuth() -> None:
    assert BIN.is_file() and os.access(BIN, os.X_OK), f"{BIN} is missing: run scripts/setup"
    version = subprocess.run([BIN, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("netsleuth ")
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "netsleuth" not in proc.stderr, proc.stderr  # no warning about the unit
