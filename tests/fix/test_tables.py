"""`netsleuth fix conntrack-max` and `fix neigh-thresh`: machine-wide
sysctls, so the tests check the decisions (pure) and the plan and file the
commands make from this machine's real values — under a temporary /etc,
with every sysctl write turned into a test failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsleuth.cli import EXIT_OK, main
from netsleuth.errors import InvalidArgument
from netsleuth.fix.sysctld import parse_sysctl_conf
from netsleuth.fix.tables import (
    CT_BUCKETS,
    CT_MAX,
    GC_THRESH,
    ConntrackUsage,
    NeighUsage,
    conntrack_values,
    neigh_values,
)
from netsleuth.netns import Namespace


def test_conntrack_limit_from_the_fullest_namespace() -> None:
    # the limit applies to each namespace's own count: the fullest one decides
    usage = ConntrackUsage({"host": 1000, "netns ci": 40000}, 65536, 16384, True)
    values, notes = conntrack_values(usage)
    assert values == {CT_MAX: "262144", CT_BUCKETS: "65536"}  # 40000*4 -> 2^18; same ratio
    assert "netns ci with 40000 of 65536" in notes[0]
    assert any("15%" in n for n in notes)
    quiet = ConntrackUsage({"host": 1000}, 65536, 16384, True)
    assert conntrack_values(quiet)[0] == {}
    assert conntrack_values(quiet, wanted=131072)[0] == {CT_MAX: "131072", CT_BUCKETS: "32768"}
    fixed_hash = ConntrackUsage({"host": 60000}, 65536, 65536, False)
    values, notes = conntrack_values(fixed_hash)
    assert values == {CT_MAX: "262144"}
    assert any("hashsize=262144" in n for n in notes)
    with pytest.raises(InvalidArgument, match="below the 40000 entries netns ci tracks"):
        conntrack_values(usage, wanted=30000)


def test_neighbour_thresholds_from_the_table() -> None:
    values, notes = neigh_values(NeighUsage({"every namespace": 900}, (128, 512, 1024)))
    assert values == dict(zip(GC_THRESH, ("512", "2048", "4096"), strict=True))
    assert notes[0].startswith("900 IPv4 neighbour entries") and "22%" in notes[-1]
    assert neigh_values(NeighUsage({"every namespace": 100}, (128, 512, 1024)))[0] == {}
    # it overflowed once (table_fulls) though few entries are left now: double it
    burst = NeighUsage({"every namespace": 100}, (128, 512, 1024), table_fulls=3)
    assert neigh_values(burst)[0][GC_THRESH[2]] == "2048"
    given = neigh_values(NeighUsage({"a": 10}, (128, 512, 1024)), wanted=16384)[0]
    assert given == dict(zip(GC_THRESH, ("2048", "8192", "16384"), strict=True))
    with pytest.raises(InvalidArgument):
        neigh_values(NeighUsage({"a": 900}, (128, 512, 1024)), wanted=512)


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == EXIT_OK
    return json.loads(capsys.readouterr().out)


@pytest.mark.usefixtures("no_sysctl_writes")
def test_conntrack_max_plan_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = Namespace.of(None)
    before = host.sysctl(CT_MAX)
    if before is None:
        pytest.skip("nf_conntrack is not loaded here")
    etc = str(tmp_path / "etc")
    wanted = str(int(before) * 2)
    plan = _json(["fix", "conntrack-max", "--max", wanted, "--etc-root", etc, "--json"], capsys)
    assert plan["settings"][0] == {"key": CT_MAX, "before": before, "wanted": wanted,
                                   "change": True}  # fmt: skip
    assert plan["file"]["changed"] and f"+{CT_MAX} = {wanted}" in plan["file"]["diff"]
    assert not plan["applied"] and not (tmp_path / "etc" / "sysctl.d").exists()

    argv = ["fix", "conntrack-max", "--max", wanted, "--etc-root", etc, "--persist-only",
            "--apply", "--json"]  # fmt: skip
    done = _json(argv, capsys)
    path = tmp_path / "etc" / "sysctl.d" / "90-netsleuth-conntrack-max.conf"
    assert done["changed"] == [f"{path} written"]
    written = parse_sysctl_conf(path.read_text())
    assert written[CT_MAX] == wanted
    assert written == {s["key"]: s["wanted"] for s in plan["settings"]}
    assert host.sysctl(CT_MAX) == before  # the running kernel kept its value
    assert _json(argv, capsys)["changed"] == []  # the second run changes nothing


@pytest.mark.usefixtures("no_sysctl_writes")
def test_neigh_thresh_plan_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = Namespace.of(None)
    before = [host.sysctl(k) for k in GC_THRESH]
    etc = str(tmp_path / "etc")
    wanted = int(before[2] or "1024") * 4
    argv = ["fix", "neigh-thresh", "--thresh3", str(wanted), "--etc-root", etc]
    plan = _json([*argv, "--json"], capsys)
    assert [s["key"] for s in plan["settings"]] == list(GC_THRESH)
    assert plan["settings"][2]["wanted"] == str(wanted)
    assert "one table for all namespaces" in plan["notes"][0]
    done = _json([*argv, "--persist-only", "--apply", "--json"], capsys)
    path = tmp_path / "etc" / "sysctl.d" / "90-netsleuth-neigh-thresh.conf"
    assert done["changed"] == [f"{path} written"]
    assert parse_sysctl_conf(path.read_text())[GC_THRESH[2]] == str(wanted)
    assert [host.sysctl(k) for k in GC_THRESH] == before
    assert _json([*argv, "--persist-only", "--apply", "--json"], capsys)["changed"] == []
    # without --max/--thresh3 the plan follows the real usage; a dry run prints it
    capsys.readouterr()
    assert main(["fix", "neigh-thresh", "--etc-root", etc]) == EXIT_OK
    assert "IPv4 neighbour entries" in capsys.readouterr().out
