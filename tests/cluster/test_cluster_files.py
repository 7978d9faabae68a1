"""cluster_files: the cluster's files on this machine (token, cluster.json, node files)."""

from __future__ import annotations

import os
import stat
import warnings

import pytest

from actorcore import cluster_files as files

pytestmark = pytest.mark.timeout(30)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_home_is_the_env_dir_created_private(actorcore_home):
    assert not actorcore_home.exists()
    assert files.home() == actorcore_home
    assert _mode(actorcore_home) == 0o700
    assert files.token_path() == actorcore_home / "token"
    assert files.cluster_info_path() == actorcore_home / "cluster.json"
    assert files.etcd_data_dir() == actorcore_home / "etcd"
    assert files.logs_dir() == actorcore_home / "logs" and _mode(actorcore_home / "logs") == 0o700


def test_home_defaults_to_dot_actorcore(monkeypatch, tmp_path):
    monkeypatch.delenv(files.HOME_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert files.home() == tmp_path / ".actorcore"


def test_token_is_written_0600_atomically_and_read_back():
    token = files.new_token()
    assert len(token) == 32 and int(token, 16) >= 0
    assert files.new_token() != token
    path = files.write_token(token)
    assert path == files.token_path()
    assert _mode(path) == 0o600
    assert files.read_token() == token
    files.write_token("second")  # replaces it, still private, no temporary file left
    assert _mode(path) == 0o600 and files.read_token() == "second"
    assert sorted(p.name for p in files.home().iterdir()) == ["token"]


def test_read_order_explicit_file_then_env_then_default(monkeypatch, tmp_path):
    files.write_token("from-default")
    assert files.read_token() == "from-default"
    monkeypatch.setenv(files.TOKEN_ENV, "from-env")
    assert files.read_token() == "from-env"
    explicit = tmp_path / "explicit"
    explicit.write_text("from-file\n")
    explicit.chmod(0o600)
    assert files.read_token(explicit) == "from-file"
    assert files.read_token(str(explicit)) == "from-file"


def test_no_token_anywhere_names_all_three_places_and_the_fix():
    with pytest.raises(files.TokenNotFoundError) as raised:
        files.read_token()
    assert isinstance(raised.value, FileNotFoundError)
    message = str(raised.value)
    assert "--token-file" in message and files.TOKEN_ENV in message and str(files.token_path()) in message
    assert "actorcore start --head" in message


def test_an_empty_token_counts_as_none(monkeypatch):
    files.write_token("")
    monkeypatch.setenv(files.TOKEN_ENV, "  ")
    with pytest.raises(files.TokenNotFoundError):
        files.read_token()


def test_a_missing_explicit_file_is_an_error_even_with_other_tokens(monkeypatch, tmp_path):
    monkeypatch.setenv(files.TOKEN_ENV, "from-env")
    with pytest.raises(files.TokenNotFoundError, match=r"nowhere.*--token-file"):
        files.read_token(tmp_path / "nowhere")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_token_file_others_may_access_is_refused_naming_the_fix(tmp_path, mode):
    path = tmp_path / "shared-token"
    path.write_text("t0k3n\n")
    path.chmod(mode)
    with pytest.raises(files.UnsafeFileError, match=f"{path}.*chmod 600 {path}"):
        files.read_token(path)
    path.chmod(0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert files.read_token(path) == "t0k3n"


def test_the_default_token_file_open_to_others_is_refused_too():
    files.write_token("t0k3n").chmod(0o644)
    with pytest.raises(files.UnsafeFileError, match="chmod 600"):
        files.read_token()


def test_an_existing_home_and_its_folders_are_made_private_again(actorcore_home):
    (actorcore_home / "logs").mkdir(parents=True)
    (actorcore_home / "nodes").mkdir()
    for path in (actorcore_home, actorcore_home / "logs", actorcore_home / "nodes"):
        path.chmod(0o755)
    assert files.home() == actorcore_home and _mode(actorcore_home) == 0o700
    files.logs_dir()
    files.nodes_dir()
    assert _mode(actorcore_home / "logs") == _mode(actorcore_home / "nodes") == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_home_owned_by_another_user_is_refused(actorcore_home):
    actorcore_home.mkdir()
    actorcore_home.chmod(0o777)
    os.chown(actorcore_home, 65534, 65534)
    with pytest.raises(files.UnsafeFileError, match=f"{actorcore_home} belongs to another user.*uid 65534"):
        files.home()
    with pytest.raises(files.UnsafeFileError):
        files.read_token()
    assert _mode(actorcore_home) == 0o777  # not ours to change


def test_cluster_info_round_trip_private():
    assert files.read_cluster_info() is None
    info = {"address": "127.0.0.1:6380", "cluster": "default", "head_node_id": "ab12",
            "etcd_auth": {"user": "u", "password": "p"}}
    path = files.write_cluster_info(info)
    assert _mode(path) == 0o600  # it may hold the etcd password
    assert files.read_cluster_info() == info
    assert files.remove_cluster_info() is True
    assert files.remove_cluster_info() is False
    assert files.read_cluster_info() is None


def test_cluster_at_names_this_machines_cluster_only_for_its_address():
    assert files.cluster_at("127.0.0.1:6380") == ("default", None)
    files.write_cluster_info({"address": "127.0.0.1:6380", "cluster": "c1", "head_node_id": "ab12",
                              "etcd_auth": {"user": "u", "password": "p"}})
    assert files.cluster_at("127.0.0.1:6380") == ("c1", {"user": "u", "password": "p"})
    assert files.cluster_at("10.0.0.2:6380") == ("default", None)


def test_a_corrupt_cluster_info_is_ignored_with_a_warning():
    files.cluster_info_path().write_text("{not json")
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert files.read_cluster_info() is None


def test_node_files():
    assert files.node_files() == []
    a = {"node_id": "aaaa", "pid": 10, "head": True, "etcd": "127.0.0.1:6380", "log": None}
    b = {**a, "node_id": "bbbb", "head": False}
    files.write_node_file(b)
    path = files.write_node_file(a)
    assert path == files.home() / "nodes" / "aaaa.json" and _mode(path) == 0o600
    assert files.node_files() == [a, b]
    (files.nodes_dir() / "broken.json").write_text("{")
    with pytest.warns(UserWarning, match="broken.json"):
        assert files.node_files() == [a, b]
    assert files.remove_node_file("aaaa") is True
    assert files.remove_node_file("aaaa") is False
    with pytest.raises(ValueError, match="bad node id"):
        files.write_node_file({**a, "node_id": "../escape"})
