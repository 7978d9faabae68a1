"""The CLI's checks of its input (exit code 2, the flag named) and `actorcore stop` without
real nodes: nothing running, stale node files, and stand-in processes that do or do not
exit on SIGTERM."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

from actorcore import cli
from actorcore import cluster_files as files
from actorcore.cli import stop as stop_command
from actorcore.objects import create_segment, list_segments, segment_name

pytestmark = pytest.mark.timeout(60)

BAD_INPUTS = [
    (["start", "--head", "--resources", "{not json"], "--resources"),
    (["start", "--head", "--resources", '["disk"]'], "--resources"),
    (["start", "--head", "--resources", '{"CPU": 2}'], "--num-cpus instead"),
    (["start", "--head", "--resources", '{"GPU": 1}'], "--num-gpus instead"),
    (["start", "--head", "--resources", '{"disk": -1}'], "--resources"),
    (["start", "--head", "--resources", '{"disk": "two"}'], "--resources"),
    (["start", "--head", "--num-cpus", "-1"], "--num-cpus"),
    (["start", "--head", "--num-cpus", "many"], "--num-cpus"),
    (["start", "--head", "--num-gpus", "-0.5"], "--num-gpus"),
    (["start", "--head", "--lease-ttl", "1.5"], "--lease-ttl"),
    (["start", "--head", "--object-replicas", "0"], "--object-replicas"),
    (["start", "--head", "--port", "0"], "--port"),
    (["start", "--head", "--port", "70000"], "--port"),
    (["start", "--head", "--node-ip-address", "my-laptop"], "--node-ip-address"),
    (["start", "--head", "--etcd", "10.0.0.1"], "--etcd"),
    (["start", "--head", "--etcd-user", "root", "--etcd-password-file", __file__], "--etcd-user"),
    (["start", "--head", "--etcd", "127.0.0.1:2379", "--etcd-user", "root"], "--etcd-user"),
    (["start", "--head", "--etcd", "127.0.0.1:2379", "--etcd-password-file", __file__],
     "--etcd-password-file: needs --etcd-user"),
    (["start", "--head", "--etcd", "127.0.0.1:2379", "--etcd-user", "u", "--etcd-password-file", "/nonexistent/pw"],
     "--etcd-password-file"),
    (["start", "--head", "--etcd", "127.0.0.1:2379", "--etcd-user", "u", "--etcd-password", "pw"],
     ("argument --etcd-password: a secret on the command line is visible to every user of this machine (ps); "
     "use --etcd-password-file FILE or $ACTORCORE_ETCD_PASSWORD")),
    (["status", "--etcd-user", "u", "--etcd-password=pw"], "use --etcd-password-file FILE"),
    (["start", "--head", "--etcd", "127.0.0.1:2379", "--etcd-ca", "/nonexistent/ca.pem"], "--etcd-ca"),
    (["start", "--head", "--etcd", "127.0.0.1:2379", "--port", "7000"], "--port"),
    (["start", "--head", "--address", "127.0.0.1:6380"], "--address"),
    (["start"], "--head --address"),
    (["start", "--address", "127.0.0.1"], "--address"),
    (["start", "--address", "127.0.0.1:port"], "--address"),
    (["start", "--address", "127.0.0.1:6380,10.0.0.2"], "--address"),
    (["start", "--address", "127.0.0.1:6380", "--object-replicas", "2"], "--object-replicas"),
    (["start", "--address", "127.0.0.1:6380", "--lease-ttl", "5"], "--lease-ttl"),
    (["start", "--address", "127.0.0.1:6380", "--port", "6381"], "--port"),
    (["start", "--address", "127.0.0.1:6380", "--token-file", "/nonexistent/token"], "--token-file"),
    (["status", "--address", "localhost"], "--address"),
]


@pytest.mark.parametrize(("argv", "named"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exits_2_naming_the_flag(argv, named, capsys, actorcore_home):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert named in err, err
    assert f"actorcore {argv[0]}: error:" in err
    assert not files.token_path().exists() and files.node_files() == []


def test_bad_input_from_the_console_script():
    result = subprocess.run([sys.executable, "-m", "actorcore", "start", "--head", "--resources", '{"CPU": 1}'],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "argument --resources: use --num-cpus instead" in result.stderr


def test_joining_without_a_token_says_where_it_looked(capsys):
    assert cli.main(["start", "--address", "127.0.0.1:6380"]) == 1
    err = capsys.readouterr().err
    assert "--token-file" in err and files.TOKEN_ENV in err and str(files.token_path()) in err


def test_joining_with_a_token_file_others_may_read_is_refused(capsys, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("t0k3n\n")
    token_file.chmod(0o644)
    assert cli.main(["start", "--address", "127.0.0.1:6380", "--token-file", str(token_file)]) == 1
    err = capsys.readouterr().err
    assert f"refusing the cluster token file {token_file}" in err and f"chmod 600 {token_file}" in err
    assert files.node_files() == []


def test_joining_an_unreachable_etcd_names_the_address(capsys, monkeypatch):
    monkeypatch.setenv(files.TOKEN_ENV, "t")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    assert cli.main(["start", "--address", address]) == 1
    assert f"cannot reach etcd at {address}" in capsys.readouterr().err
    assert files.node_files() == [] and files.read_cluster_info() is None


def test_a_head_on_a_taken_port_names_it(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert cli.main(["start", "--head", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot start etcd on 127.0.0.1:{port}" in err and "--port" in err
    assert not files.token_path().exists()


# -- supervise: a subcommand group whose default subcommand takes the spec ----------------------


@pytest.mark.parametrize("argv", [["supervise", "status"], ["supervise-status"], ["supervise", "reload"],
                                  ["supervise-reload"]], ids=" ".join)
def test_supervise_status_and_reload_are_subcommands(argv, capsys):
    assert cli.main(argv) == 1  # no cluster on this machine to ask
    err = capsys.readouterr().err
    assert err.startswith(f"actorcore supervise {argv[-1].removeprefix('supervise-')}: no cluster to ask"), err


@pytest.mark.parametrize("argv", [["supervise", "services.toml", "--detach"],
                                  ["supervise", "run", "services.toml", "--detach"]], ids=" ".join)
def test_supervise_takes_the_spec_as_its_first_word(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "--detach needs --pid-file" in capsys.readouterr().err


def test_supervise_without_a_spec_or_subcommand_exits_2(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["supervise"])
    assert exited.value.code == 2
    assert "actorcore supervise: error:" in capsys.readouterr().err


# -- stop ----------------------------------------------------------------------------------------


def test_stop_with_nothing_running(capsys):
    assert cli.main(["stop"]) == 0
    assert capsys.readouterr().out.strip() == "no actorcore nodes were running on this machine"


def test_stop_from_the_console_script_with_nothing_running(actorcore_home):
    result = subprocess.run([sys.executable, "-m", "actorcore", "stop"], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "no actorcore nodes were running on this machine" in result.stdout


def _record(node_id: str, pid: int, head: bool = False) -> dict:
    return {"node_id": node_id, "pid": pid, "head": head, "etcd": "127.0.0.1:1", "log": None}


def test_stop_forgets_a_dead_node_and_removes_its_shared_memory(capsys):
    node_id = uuid.uuid4().hex[:16]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    segment = create_segment(segment_name(node_id, "obj1"), 4096)
    segment.close()
    files.write_node_file(_record(node_id, dead.pid, head=True))
    files.write_cluster_info({"address": "127.0.0.1:1", "cluster": "default", "head_node_id": node_id,
                              "etcd_auth": None})
    assert cli.main(["stop"]) == 0
    out = capsys.readouterr().out
    assert f"head node {node_id} (pid {dead.pid}): was not running; removed 1 shared-memory segment" in out
    assert "no actorcore nodes were running on this machine" in out
    assert list_segments(node_id) == []
    assert files.node_files() == [] and files.read_cluster_info() is None


def test_stop_leaves_alone_a_pid_that_is_not_the_node(capsys):
    node_id = uuid.uuid4().hex[:16]
    files.write_node_file(_record(node_id, os.getpid()))  # a reused pid: this test's own process
    assert cli.main(["stop"]) == 0
    assert "was not running" in capsys.readouterr().out
    assert files.node_files() == []


_STAND_IN = """
import signal, sys, time
if sys.argv[1] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""


def _stand_in(node_id: str, behaviour: str) -> subprocess.Popen:
    """A process whose command line looks like node ``node_id``'s (``actorcore.node`` and the id)."""
    process = subprocess.Popen([sys.executable, "-c", _STAND_IN, behaviour, "actorcore.node", node_id],
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline() == "ready\n"
    return process


def test_stop_terminates_workers_first_then_heads_and_kills_the_stubborn(capsys, monkeypatch):
    monkeypatch.setattr(stop_command, "STOP_TIMEOUT", 0.5)
    head_id, worker_id = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    head, worker = _stand_in(head_id, "exit-on-term"), _stand_in(worker_id, "ignore-term")
    try:
        files.write_node_file(_record(head_id, head.pid, head=True))
        files.write_node_file(_record(worker_id, worker.pid))
        assert cli.main(["stop"]) == 0
        assert worker.wait(5) == -9 and head.wait(5) == -15
    finally:
        for process in (head, worker):
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"node {worker_id} (pid {worker.pid}): killed (SIGKILL) after 0.5 s",
                     f"head node {head_id} (pid {head.pid}): stopped"]
    assert files.node_files() == []


def test_stop_force_kills_at_once(capsys):
    node_id = uuid.uuid4().hex[:16]
    node = _stand_in(node_id, "exit-on-term")
    try:
        files.write_node_file(_record(node_id, node.pid))
        assert cli.main(["stop", "--force"]) == 0
        assert node.wait(5) == -9
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        node.stdout.close()
    assert capsys.readouterr().out.strip() == f"node {node_id} (pid {node.pid}): killed (SIGKILL)"
