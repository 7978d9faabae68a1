"""The supervise daemon's pid file: written atomically and never through a symlink someone put
in its place; removed at exit only while it is still the daemon's."""

from __future__ import annotations

import os

import pytest

from actorcore.services.daemon import remove_pid_file, write_pid_file

pytestmark = pytest.mark.timeout(30)


def test_a_symlink_at_the_pid_file_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pid_file = tmp_path / "daemon.pid"
    pid_file.symlink_to(victim)
    write_pid_file(str(pid_file))
    assert victim.read_text() == "precious\n"
    assert not pid_file.is_symlink() and pid_file.read_text() == f"{os.getpid()}\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    remove_pid_file(str(pid_file))
    assert not pid_file.exists() and victim.read_text() == "precious\n"


def test_a_pid_file_that_is_no_longer_ours_is_left_alone(tmp_path):
    pid_file = tmp_path / "daemon.pid"
    write_pid_file(str(pid_file))
    pid_file.write_text("1\n")  # another daemon's since
    remove_pid_file(str(pid_file))
    assert pid_file.read_text() == "1\n"
    target = tmp_path / "target"
    target.write_text(f"{os.getpid()}\n")
    pid_file.unlink()
    pid_file.symlink_to(target)
    remove_pid_file(str(pid_file))
    assert pid_file.is_symlink() and target.exists()
