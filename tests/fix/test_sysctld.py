"""sysctl.d files: rendered, read back, written with a backup, and the later
files that would override ours at boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsleuth.fix.configs import EditRefused
from netsleuth.fix.sysctld import (
    SysctlPlan,
    SysctlSetting,
    apply_sysctl_plan,
    overriding_settings,
    parse_sysctl_conf,
    plan_sysctl_file,
    render_sysctl_conf,
    sysctl_file,
)

KEY = "net.ipv4.conf.eth0.rp_filter"


def test_parse_and_render_keep_other_lines_and_rewrite_the_last_one() -> None:
    old = (
        "# mine\nkernel.panic = 10\n-net.ipv4.conf.eth0.rp_filter=1\n; x\n"
        "net/ipv4/conf/eth0/rp_filter = 1\n"
    )
    assert parse_sysctl_conf(old) == {"kernel.panic": "10", KEY: "1"}
    new = render_sysctl_conf(old, {KEY: "2", "vm.swappiness": "10"}, "header")
    assert new.splitlines() == [
        "# mine",
        "kernel.panic = 10",
        "-net.ipv4.conf.eth0.rp_filter=1",
        "; x",
        f"{KEY} = 2",
        "vm.swappiness = 10",
    ]
    assert parse_sysctl_conf(new) == {"kernel.panic": "10", KEY: "2", "vm.swappiness": "10"}
    fresh = render_sysctl_conf("", {KEY: "2"}, "line one\nline two")
    assert fresh == f"# line one\n# line two\n{KEY} = 2\n"


def test_plan_write_backup_and_second_run(tmp_path: Path) -> None:
    path = sysctl_file(tmp_path / "etc", "rp-filter")
    assert path == tmp_path / "etc" / "sysctl.d" / "90-netsleuth-rp-filter.conf"
    edit = plan_sysctl_file(path, {KEY: "2"}, "netsleuth")
    assert edit.changed and edit.old == "" and f"+{KEY} = 2" in edit.diff()
    plan = SysctlPlan("rp-filter eth0", "host", (SysctlSetting(KEY, "1", "2"),), edit,
                      runtime=False)  # fmt: skip
    assert plan.runtime_changes == () and plan.changes_anything
    assert "leave" in plan.steps()[0] and "(new file)" in plan.steps()[1]
    result = apply_sysctl_plan(plan, None)  # runtime=False: the kernel is not touched
    assert result.changed == (f"{path} written",) and result.backups == ()
    assert parse_sysctl_conf(path.read_text()) == {KEY: "2"}
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    again = plan_sysctl_file(path, {KEY: "2"}, "netsleuth")
    assert not again.changed
    # someone else edits it: ours is rewritten after a backup, theirs is kept
    path.write_text(path.read_text() + "kernel.panic = 10\n" + f"{KEY} = 1\n")
    edit = plan_sysctl_file(path, {KEY: "2"}, "netsleuth")
    result = apply_sysctl_plan(SysctlPlan("x", "host", (), edit, runtime=False), None)
    (backup,) = result.backups
    assert backup.read_text().endswith(f"{KEY} = 1\n")
    assert parse_sysctl_conf(path.read_text()) == {KEY: "2", "kernel.panic": "10"}


def test_a_symlinked_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.conf"
    target.write_text("")
    path = sysctl_file(tmp_path / "etc", "rp-filter")
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    with pytest.raises(EditRefused, match="symlink"):
        plan_sysctl_file(path, {KEY: "2"}, "netsleuth")


def test_later_files_that_set_the_key_are_named(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    ours = sysctl_file(etc, "rp-filter")
    (etc / "sysctl.d").mkdir(parents=True)
    lib = tmp_path / "usr" / "lib" / "sysctl.d"
    lib.mkdir(parents=True)
    (lib / "50-default.conf").write_text("net.ipv4.conf.*.rp_filter = 1\n")  # earlier: harmless
    (lib / "95-vendor.conf").write_text("net.ipv4.conf.*.rp_filter = 1\n")  # later glob: wins
    (lib / "99-same-name.conf").write_text(f"{KEY} = 1\n")
    (etc / "sysctl.d" / "99-same-name.conf").write_text(f"{KEY} = 2\n")  # /etc shadows /usr/lib
    (etc / "sysctl.conf").write_text(f"{KEY}=0\n")
    found = overriding_settings(etc, ours, {KEY: "2"})
    assert found == [
        f"{lib / '95-vendor.conf'}: net.ipv4.conf.*.rp_filter = 1",
        f"{etc / 'sysctl.conf'}: {KEY} = 0",
    ]
