"""The command line's one vocabulary, parsed only (no root, nothing runs):
every command spells a shared idea the same way, old invocations still
parse, and every handler answers with an ExitStatus."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from netsleuth import cli
from netsleuth.cli import ExitStatus, build_parser, main

# The shared options: spelling -> the metavar every command shows for it.
SHARED = {
    "--netns": "NAME",
    "--target": "TARGET",
    "--host-netns": "NAME",
    "--docker-host": "URL",
    "--store": "FILE",
    "--since": "T",
    "--until": "T",
    "--duration": "S",
}


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command parser, named like `fix bridge`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                yield full, sub
                yield from _commands(sub, full)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings if a.help != argparse.SUPPRESS}


COMMANDS = dict(_commands(build_parser()))


def test_every_command_is_surveyed() -> None:
    assert set(COMMANDS) >= {
        "lab", "lab run", "lab compare", "lab demo", "lab clean", "watch", "report",
        "doctor", "fix", "fix bridge", "fix arp-notify", "fix ip-forward", "fix mtu",
        "capture", "explain", "exporter",
    }  # fmt: skip


@pytest.mark.parametrize("option", sorted(SHARED))
def test_a_shared_option_reads_the_same_in_every_command(option: str) -> None:
    seen = {
        name: _options(sub)[option] for name, sub in COMMANDS.items() if option in _options(sub)
    }
    assert seen, option
    for name, action in seen.items():
        assert action.metavar == SHARED[option], (name, option, action.metavar)
        assert action.dest == option.removeprefix("--").replace("-", "_"), (name, option)


def test_json_is_a_flag_wherever_it_exists() -> None:
    having = [name for name, sub in COMMANDS.items() if "--json" in _options(sub)]
    assert set(having) >= {"lab run", "lab compare", "lab demo", "watch", "report", "doctor",
                           "fix bridge", "fix arp-notify", "fix ip-forward", "fix mtu",
                           "capture", "explain"}  # fmt: skip
    for name in having:
        assert isinstance(_options(COMMANDS[name])["--json"], argparse._StoreTrueAction), name


def test_docker_host_is_repeatable_everywhere() -> None:
    for name, sub in COMMANDS.items():
        action = _options(sub).get("--docker-host")
        if action is not None:
            assert isinstance(action, argparse._AppendAction), name


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_watch_and_exporter_take_the_shared_spellings() -> None:
    common = [
        "--target", "netns:blue", "--target", "container:ci", "--probe", "icmp:198.18.0.1",
        "--docker-host", "unix:///run/a.sock", "--docker-host", "unix:///run/b.sock",
        "--store", "w.sqlite", "--host-netns", "nsl-x-host", "--duration", "5",
    ]  # fmt: skip
    for command in ("watch", "exporter"):
        args = parse(command, *common)
        assert args.target == ["netns:blue", "container:ci"]
        assert args.docker_host == ["unix:///run/a.sock", "unix:///run/b.sock"]
        assert (args.store, args.host_netns, args.duration) == (Path("w.sqlite"), "nsl-x-host", 5)
    assert parse("watch", "--probe", "icmp:198.18.0.1", "--json").json
    assert parse("exporter", "--netns", "a", "--netns", "b").netns == ["a", "b"]


def test_doctor_fix_capture_explain_lab_take_the_shared_spellings() -> None:
    assert parse("doctor", "--netns", "a", "--netns", "b", "--json").netns == ["a", "b"]
    for argv in (["bridge", "br0"], ["arp-notify", "br0"], ["ip-forward"], ["mtu", "br0"]):
        args = parse("fix", *argv, "--netns", "lab", "--json")
        assert (args.netns, args.json) == ("lab", True)
    args = parse(
        "capture", "--target", "container:web", "--docker-host", "unix:///run/d.sock",
        "--duration", "2.5", "--json", "-w", "x.pcapng",
    )  # fmt: skip
    assert (args.target, args.docker_host, args.duration) == (
        "container:web",
        ["unix:///run/d.sock"],
        2.5,
    )
    args = parse("explain", "x.pcapng", "--store", "w.sqlite", "--json")
    assert (args.store, args.json) == (Path("w.sqlite"), True)
    args = parse("lab", "run", "--duration", "9", "--store", "l.sqlite", "--json")
    assert (args.duration, args.store, args.json) == (9, Path("l.sqlite"), True)
    assert parse("lab", "demo", "--duration", "3", "--json").duration == 3


def test_report_takes_the_store_as_argument_or_option_and_a_time_range() -> None:
    args = parse("report", "r.sqlite", "--since", "2h", "--until", "1h", "--json")
    assert (args.store_file, args.store, args.since, args.until) == (
        Path("r.sqlite"),
        None,
        "2h",
        "1h",
    )
    args = parse("report", "--store", "r.sqlite", "--run", "last")
    assert (args.store_file, args.store, args.run) == (None, Path("r.sqlite"), ["last"])
    assert parse("report").store_file is None and parse("report").store is None


def test_old_invocations_still_parse() -> None:
    # capture took one --docker-host; it is repeatable now, like watch's
    assert parse("capture", "--target", "pid:1", "--docker-host", "u", "-w", "f").docker_host == [
        "u"
    ]
    assert parse("capture", "--lab", "3fa2c1", "--duration", "1", "-w", "f").lab == "3fa2c1"
    args = parse("capture", "--iface", "host:eth0:uplink", "--count", "3", "-w", "f")
    assert args.iface == ["host:eth0:uplink"]
    assert parse("doctor", "--conntrack-sample", "2").conntrack_sample == 2
    assert parse("explain", "x.pcap", "--window", "3").window == 3
    assert parse("report", "--store", "s.sqlite").store == Path("s.sqlite")


def test_exit_statuses_are_the_ones_the_cli_always_used() -> None:
    assert [int(s) for s in ExitStatus] == [0, 1, 2, 3, 130]
    assert cli.EXIT_OK is ExitStatus.OK and cli.EXIT_FINDINGS is ExitStatus.FINDINGS
    assert cli.EXIT_USAGE is ExitStatus.USAGE and cli.EXIT_INTERRUPTED is ExitStatus.INTERRUPTED


def test_every_named_handler_is_declared_to_return_an_exit_status() -> None:
    handlers = {
        name: sub.get_default("handler")
        for name, sub in COMMANDS.items()
        if sub.get_default("handler") is not None
    }
    named = {n: h for n, h in handlers.items() if h.__name__ != "<lambda>"}
    assert len(named) >= 12
    for name, handler in named.items():
        assert inspect.signature(handler).return_annotation in ("ExitStatus", ExitStatus), name


@pytest.mark.parametrize("argv", [[], ["lab"], ["fix"]])
def test_a_command_without_its_subcommand_prints_help_and_is_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(argv)
    assert status is ExitStatus.USAGE
    assert "usage:" in capsys.readouterr().out


def test_an_unusable_value_is_usage_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--rule", "no-such-rule"]) is ExitStatus.USAGE
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [["report", "--bogus"], ["watch", "--probe", "icmp:x", "--rate", "0"], ["nosuch"]],
)
def test_an_invalid_option_exits_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == ExitStatus.USAGE
    assert "Traceback" not in capsys.readouterr().err
