"""Shell completion: the generated scripts complete commands, options and
live values in a real bash (and parse in zsh when it is installed)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from netsleuth.cli.completion_cmd import script


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "netsleuth.bash"
    path.write_text(script("bash"))
    return path


def complete(bash_script: Path, line: str) -> list[str]:
    """What bash offers for the last word of ``line`` (empty: a new word)."""
    words = line.split(" ")
    code = (
        f"source {shlex.quote(str(bash_script))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}\n"
        "_shtab_netsleuth netsleuth\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [w.strip() for w in proc.stdout.splitlines() if w.strip()]


def test_bash_completes_commands_and_options(bash_script: Path) -> None:
    commands = complete(bash_script, "netsleuth ")
    for command in ("watch", "report", "explain", "check-deps", "completion", "lab"):
        assert command in commands
    assert complete(bash_script, "netsleuth rep") == ["report"]
    options = complete(bash_script, "netsleuth watch --")
    assert {"--target", "--probe", "--store", "--rate"} <= set(options)
    assert "--pin-mac" not in options  # an option of lab, not of watch


def test_bash_completes_probe_forms_and_target_forms(bash_script: Path) -> None:
    assert set(complete(bash_script, "netsleuth watch --probe ")) >= {"dns:", "resolve:", "tcp:"}
    assert complete(bash_script, "netsleuth watch --target ho") == ["host"]


@pytest.mark.netns
def test_bash_completes_namespace_names(bash_script: Path, make_netns: Callable[..., Path]) -> None:
    name = make_netns("compl").name
    assert name in complete(bash_script, "netsleuth doctor --netns ")
    assert f"netns:{name}" in complete(bash_script, "netsleuth watch --target netns:")


def test_zsh_loads_the_script_and_binds_it_to_netsleuth(tmp_path: Path) -> None:
    zsh = shutil.which("zsh")
    assert zsh, "zsh is missing: run scripts/setup (Debian package zsh)"
    path = tmp_path / "_netsleuth"
    path.write_text(script("zsh"))
    subprocess.run([zsh, "-n", str(path)], check=True, timeout=30)
    # found on fpath as setup installs it: compinit binds the command to it,
    # and the file loads as that function
    load = (
        f"fpath=({tmp_path} $fpath); autoload -U compinit; compinit -u -D; "
        "print -r -- $_comps[netsleuth]; autoload -Uz +X _netsleuth && print loaded"
    )
    out = subprocess.run(
        [zsh, "-f", "-c", load], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.split() == ["_netsleuth", "loaded"], out
