"""``actorcore logs`` and ``start``'s log settings without a cluster: bad arguments exit with
code 2 naming the flag, a missing cluster or a bad rotation setting with code 1 and a message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)


def run(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ACTORCORE_HOME": str(tmp_path / "home"),
                   "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env}
    environment.pop("ACTORCORE_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "actorcore", *args], env=environment, capture_output=True,
                          text=True, timeout=90, check=False)


@pytest.mark.parametrize(("args", "message"), [
    (("logs", "actor"), "one of the arguments --id/-a --name is required"),
    (("logs", "actor", "--id", "a", "--name", "b"), "argument --name: not allowed with argument --id/-a"),
    (("logs", "worker", "--pid", "x"), "argument --pid: expected a process id"),
    (("logs", "actor", "--id", "a", "--tail", "-2"), "argument --tail: expected a number of lines >= 0, or -1"),
    (("logs", "node", "--node-ip", "nowhere"), "argument --node-ip/-ip: expected an IP address"),
    (("logs", "--address", "nohost"), "argument --address: expected HOST:PORT"),
])
def test_bad_arguments_name_the_flag(tmp_path, args, message):
    result = run(tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_no_cluster_to_ask(tmp_path):
    result = run(tmp_path, "logs")
    assert result.returncode == 1
    assert "actorcore logs: no cluster to ask: pass an address" in result.stderr


def test_start_refuses_a_bad_rotation_setting(tmp_path):
    result = run(tmp_path, "start", "--head", "--num-cpus", "1", ACTORCORE_ROTATION_BACKUP_COUNT="-1")
    assert result.returncode == 1
    assert "actorcore start: $ACTORCORE_ROTATION_BACKUP_COUNT must be a whole number >= 0, got '-1'" in result.stderr
    assert not (tmp_path / "home" / "nodes").exists() or not list((tmp_path / "home" / "nodes").iterdir())


def test_the_address_may_come_before_or_after_the_subcommand():
    from actorcore.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["logs", "--address", "10.0.0.1:6380", "actor", "--id", "a"]).address == "10.0.0.1:6380"
    assert parser.parse_args(["logs", "actor", "--id", "a", "--address", "10.0.0.2:6380"]).address == "10.0.0.2:6380"
    args = parser.parse_args(["logs", "worker", "--pid", "12"])
    assert (args.address, args.timeout, args.tail, args.follow, args.err) == (None, 30, 1000, False, False)
