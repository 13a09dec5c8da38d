"""`netsleuth report` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netsleuth.cli import ExitStatus, main
from netsleuth.cli.report_cmd import parse_time
from netsleuth.errors import InvalidArgument
from netsleuth_testing.synthetic import generate, write_store

S = 1_000_000_000
NOW = 1_900_000_000 * S


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "s.sqlite"
    write_store(path, generate("quiet", seconds=20, start_ns=NOW - 200 * S))
    write_store(path, generate("flap", seconds=30, start_ns=NOW - 100 * S))
    return path


def test_json_for_all_runs_and_for_one(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--store", str(store), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"]["cause"] == "bridge-mac-flap" and doc["runs"] == [1, 2]
    assert main(["report", "--store", str(store), "--json", "--run", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"]["cause"] == "no-failures"
    assert main(["report", "--store", str(store), "--json", "--run", "last"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == [2]


def test_terminal_and_html(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "out.html"
    assert main(["report", "--store", str(store), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "bridge-mac-flap" in out and f"wrote {page}" in out
    assert page.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--store", "/nonexistent/x.sqlite"], 1, "does not exist"),
        (["--run", "7"], 2, "run 7 is not in the store (runs: 1, 2)"),
        (["--run", "latest"], 2, "--run takes a run number or 'last'"),
        (["--since", "yesterday-ish"], 2, "cannot read time 'yesterday-ish'"),
        (["--since", "1m", "--until", "2h"], 2, "--since must be earlier than --until"),
        (["--html", "/nonexistent/dir/r.html"], 1, "cannot write /nonexistent/dir/r.html"),
    ],
)
def test_user_errors_are_one_line(
    store: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    full = ["report", "--store", str(store), *argv] if argv[0] != "--store" else ["report", *argv]
    assert main(full) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_parse_time_forms() -> None:
    assert parse_time("90s", NOW) == NOW - 90 * S
    assert parse_time("2h", NOW) == NOW - 7200 * S
    assert parse_time("1.5m", NOW) == NOW - 90 * S
    assert parse_time("1900000000", NOW) == NOW
    assert parse_time("2030-03-17T17:46:40Z", NOW) == NOW
    assert parse_time("2030-03-17T18:46:40+01:00", NOW) == NOW
    assert parse_time("17:46:40", NOW) % (86400 * S) != 1  # today's clock time parses
    with pytest.raises(InvalidArgument):
        parse_time("soon", NOW)


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--since" in out and "Fisher" in out


def test_the_store_as_an_argument(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(store), "--json", "--run", "last"]) == 0
    by_argument = json.loads(capsys.readouterr().out)
    assert main(["report", "--store", str(store), "--json", "--run", "last"]) == 0
    assert json.loads(capsys.readouterr().out) == by_argument
    assert by_argument["runs"] == [2]
    # the same store both ways is fine
    assert main(["report", str(store), "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"]["cause"] == "bridge-mac-flap"


def test_two_different_stores_are_one_line_usage_error(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.sqlite"
    assert main(["report", str(store), "--store", str(other)]) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"two stores given, {store} and --store {other}: give one of them" in err


def test_a_missing_store_as_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["report", "/nonexistent/x.sqlite"])
    assert status is ExitStatus.ERROR
    err = capsys.readouterr().err
    assert err.startswith("netsleuth: error: ") and "does not exist" in err
    assert err.count("\n") == 1
