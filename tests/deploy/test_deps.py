"""The dependency table: consistent with the command line, a missing required
program stops a command in one line naming its Debian package, and
check-deps reports (and exits) as documented."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from netsleuth.cli import _COMMANDS, main
from netsleuth.cli.deps_cmd import check_report
from netsleuth.deps import COMMANDS, DEPENDENCIES, CommandNeeds, Status, probe, require


def test_every_command_has_an_entry_and_every_use_a_known_dependency() -> None:
    cli = {c for c in _COMMANDS if c not in ("deps", "completion")}
    assert cli == set(COMMANDS)
    for uses in COMMANDS.values():
        for use in uses:
            dep = DEPENDENCIES[use.dependency]
            assert dep.package or dep.how  # a missing one always says what to do


def test_a_missing_required_program_is_one_line_with_its_package() -> None:
    def missing_nft(name: str) -> Status:
        return Status(name != "nft", "")

    with pytest.raises(CommandNeeds) as err:
        require("watch", missing_nft)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("watch: nft is missing")
    assert "Debian package nftables" in text
    require("watch", lambda name: Status(name != "docker-socket", ""))  # optional: runs


def test_check_report_marks_missing_required_only() -> None:
    statuses = {name: Status(name not in ("dnsmasq", "dockerd"), "") for name in DEPENDENCIES}
    report = check_report(["lab", "explain"], statuses)
    assert report["missing_required"] == ["lab: dnsmasq"]  # dockerd is optional
    row = next(r for r in report["commands"]["lab"] if r["name"] == "dnsmasq")
    assert (row["present"], row["package"]) == (False, "dnsmasq-base")
    assert report["commands"]["explain"] == []


def test_probe_finds_a_real_program_and_not_a_missing_one() -> None:
    assert probe("ip").present  # iproute2: the machine's own
    assert probe("ip").where.endswith("/ip")


def test_check_deps_json_and_its_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check-deps", "--json", "explain", "report"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["missing_required"] == []
    assert set(out["commands"]) == {"explain", "report"}
    assert out["version"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert main(["check-deps", "nosuch"]) == 2


def test_version_is_fast_and_says_what_it_found() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "netsleuth", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    first, features = proc.stdout.splitlines()
    assert first.startswith("netsleuth ") and "Python " in first
    assert "compiled modules in use" in first or "plain Python" in first
    for name in ("tracefs", "btf", "nft", "bpftrace", "docker-socket"):
        assert f"{name} " in features
