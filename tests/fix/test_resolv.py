"""`netsleuth fix resolv-options`: the edit (pure, read back), and the
command on a real namespace's /etc/netns/NAME/resolv.conf — in place, so a
process already running under `ip netns exec` sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from netsleuth.audit import audit
from netsleuth.audit.readers import parse_resolv_conf, read_snapshot
from netsleuth.cli import EXIT_OK, main
from netsleuth.errors import InvalidArgument
from netsleuth.fix.resolv import parse_target, render_resolv_options
from netsleuth.netns import exec_argv

RESOLV = "# ours\nnameserver 192.0.2.53\nsearch a.example b.example c.example\noptions ndots:5\n"


def test_the_option_is_added_once_and_nothing_else_changes() -> None:
    new = render_resolv_options(RESOLV)
    assert new == RESOLV + "options single-request-reopen\n"
    assert render_resolv_options(new) == new  # idempotent
    for present in ("single-request", "use-vc", "single-request-reopen"):
        text = f"nameserver 192.0.2.53\noptions {present}\n"
        assert render_resolv_options(text) == text, present
    ndots = render_resolv_options(RESOLV, ndots=1)
    assert parse_resolv_conf(ndots) == (
        ("192.0.2.53",),
        ("ndots:1", "single-request-reopen"),
        ("a.example", "b.example", "c.example"),
    )
    assert render_resolv_options(ndots, ndots=1) == ndots
    bare = render_resolv_options("nameserver 192.0.2.53", ndots=2)  # no final newline
    assert bare == "nameserver 192.0.2.53\noptions single-request-reopen ndots:2\n"


def test_targets() -> None:
    assert parse_target("ci").label == "netns:ci"
    assert parse_target("netns:ci").label == "netns:ci"
    assert parse_target("container:web").kind == "container"
    for bad in ("pid:7", "netns:", "a/b"):
        with pytest.raises(InvalidArgument):
            parse_target(bad)


def _doctor_rules(name: str) -> set[str]:
    """The resolver rules doctor (host mode) reports for namespace ``name``."""
    snap = read_snapshot("host", namespaces=[name], query_docker_api=False)
    return {f.rule for f in audit([snap]) if f.subject == f"netns {name}"}


@pytest.mark.netns
def test_fix_resolv_options_in_a_namespace(
    nsl_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = nsl_netns("rs", {"resolv.conf": RESOLV})
    name = path.name
    conf = Path("/etc/netns") / name / "resolv.conf"
    assert "resolver-search-amplification" in _doctor_rules(name)

    assert main(["fix", "resolv-options", name]) == EXIT_OK
    out = capsys.readouterr().out
    assert "+options single-request-reopen" in out and "dry run" in out
    assert conf.read_text() == RESOLV

    inode = conf.stat().st_ino
    # a process that already runs in the namespace, with the file bound over its /etc
    reader = subprocess.Popen(
        exec_argv(name, ["sh", "-c", "echo ready; read go; cat /etc/resolv.conf"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
    argv = ["fix", "resolv-options", f"netns:{name}", "--ndots", "1", "--apply", "--json"]
    assert main(argv) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["applied"] and doc["changed"][0].startswith(f"{conf} updated (backup ")
    assert len(doc["backups"]) == 1
    assert Path(doc["backups"][0]).read_text() == RESOLV
    assert conf.stat().st_ino == inode  # rewritten in place
    seen, _ = reader.communicate("go\n", timeout=20)
    assert seen == RESOLV.replace("ndots:5", "ndots:1") + "options single-request-reopen\n"
    assert not {"resolver-search-amplification"} & _doctor_rules(name)

    assert main(argv) == EXIT_OK  # a second run changes nothing
    again = json.loads(capsys.readouterr().out)
    assert not again["changed"] and again["backups"] == []
    assert sorted(p.name for p in conf.parent.iterdir())[0] == "resolv.conf"
    assert len(list(conf.parent.glob("resolv.conf.netsleuth-*.bak"))) == 1

    assert main(["fix", "resolv-options", f"{name}-gone"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ip netns list" in err


@pytest.mark.netns
def test_a_namespace_without_its_own_file_and_a_container(
    nsl_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = nsl_netns("rh").name
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    assert main(["fix", "resolv-options", name, "--etc-root", str(etc)]) == 1
    assert "--copy-host" in capsys.readouterr().err
    argv = ["fix", "resolv-options", name, "--etc-root", str(etc), "--copy-host", "--apply"]
    assert main(argv) == EXIT_OK
    own = etc / "netns" / name / "resolv.conf"
    assert own.read_text() == "nameserver 192.0.2.53\noptions single-request-reopen\n"
    assert (etc / "resolv.conf").read_text() == "nameserver 192.0.2.53\n"
    capsys.readouterr()

    assert main(["fix", "resolv-options", "container:web"]) == EXIT_OK
    assert '"dns-opts": ["single-request-reopen"]' in capsys.readouterr().out
    assert main(["fix", "resolv-options", "container:web", "--apply"]) == 1
    assert "Docker rewrites it" in capsys.readouterr().err


@pytest.mark.netns
def test_apply_needs_root(nsl_netns: Callable[..., Path], as_nobody: list[str]) -> None:
    name = nsl_netns("rn", {"resolv.conf": RESOLV}).name
    done = subprocess.run(
        [*as_nobody, sys.executable, "-m", "netsleuth", "fix", "resolv-options", name, "--apply"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": "/tmp"},
        check=False,
    )
    assert done.returncode == 1 and "needs root" in done.stderr
    assert done.stderr.count("\n") == 1
    assert (Path("/etc/netns") / name / "resolv.conf").read_text() == RESOLV


@pytest.mark.netns
def test_doctor_fix_doctor_for_parallel_queries(
    nsl_netns: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A namespace with a private address and a default route, whose resolver
    is off its subnet (so its queries are translated on the way out): doctor
    names the race, the fix it prints clears it."""
    from pyroute2 import IPRoute

    from netsleuth.audit import run_doctor
    from netsleuth.netns import run_in

    path = nsl_netns("pq", {"resolv.conf": "nameserver 192.0.2.53\n"})
    name = path.name

    def body() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="vpq0", kind="veth", peer="vpq0-p")
            for n in ("vpq0", "vpq0-p"):
                ipr.link("set", index=ipr.link_lookup(ifname=n)[0], state="up")
            idx = ipr.link_lookup(ifname="vpq0")[0]
            ipr.addr("add", index=idx, address="198.18.7.10", prefixlen=24)
            ipr.route("add", dst="0.0.0.0/0", gateway="198.18.7.1", oif=idx)

    run_in(path, body)
    [found] = [f for f in run_doctor(netns=name) if f.rule == "resolver-parallel-queries"]
    assert found.subject == name and "via 198.18.7.1" in str(found.evidence["nat"])
    command = found.fix.split(" (", 1)[0]
    assert command == f"netsleuth fix resolv-options netns:{name} --apply"
    assert main(command.split()[1:]) == EXIT_OK
    capsys.readouterr()
    assert not [f for f in run_doctor(netns=name) if f.rule == "resolver-parallel-queries"]
