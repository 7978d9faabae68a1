"""Worker logs on a real two-node cluster: a task's and an actor's output in their worker's
files, ``actorcore logs`` (listing, actor, worker, node, --tail, --err, --follow), the
`actorcore.util.logs` API, a dead actor's log, rotation, the bound on ended workers' files,
path traversal refused, and the dashboard's log view with and without credentials."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid

import pytest

import actorcore
from actorcore.testing import wait_until
from actorcore.util.logs import LogError, get_log, list_logs

from .conftest import BACKUPS, DEAD_WORKERS_KEPT, ROTATION_BYTES, as_json, lines_of

pytestmark = pytest.mark.timeout(300)

ON_HEAD = {"resources": {"head": 0.01}}
ON_OTHER = {"resources": {"other": 0.01}}


@actorcore.remote
class Printer:
    def say(self, *lines: str, err: str | None = None) -> int:
        for line in lines:
            print(line, flush=True)
        if err is not None:
            print(err, file=sys.stderr, flush=True)
        return os.getpid()

    def crash(self) -> None:
        print("crashing now", flush=True)
        os._exit(3)

    def where(self) -> tuple[str, int]:
        return actorcore.get_runtime_context().get_worker_id(), os.getpid()


@actorcore.remote
def shout(marker: str, err: str) -> tuple[str, int]:
    print(marker, flush=True)
    print(err, file=sys.stderr, flush=True)
    return actorcore.get_runtime_context().get_worker_id(), os.getpid()


def read_file(path) -> str:
    return path.read_text() if path.exists() else ""


def actor_id(handle) -> str:
    return handle._actorcore_actor_id


def test_a_task_and_an_actor_print_to_their_worker_files(log_cluster):
    marker, err = f"task-out-{uuid.uuid4().hex}", f"task-err-{uuid.uuid4().hex}"
    worker_id, pid = actorcore.get(shout.options(**ON_OTHER).remote(marker, err))
    out = log_cluster.folder(log_cluster.other) / f"worker-{worker_id}-{pid}.out"
    wait_until(lambda: marker in read_file(out), 60, "the task's line in its worker's .out file")
    wait_until(lambda: err in read_file(out.with_suffix(".err")), 60, "the task's stderr line in its .err file")
    assert err not in read_file(out)
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    actor = Printer.options(**ON_HEAD).remote()
    actor_worker, actor_pid = actorcore.get(actor.where.remote())
    line = f"actor-out-{uuid.uuid4().hex}"
    actorcore.get(actor.say.remote(line))
    path = log_cluster.folder(log_cluster.head) / f"worker-{actor_worker}-{actor_pid}.out"
    wait_until(lambda: line in read_file(path), 60, "the actor's line in its worker's .out file")
    actorcore.kill(actor)


def test_cli_lists_every_nodes_files(log_cluster):
    worker_id, pid = actorcore.get(shout.options(**ON_OTHER).remote("listed", "listed-err"))
    listing = json.loads(log_cluster.logs("--json").stdout)
    assert set(listing) == {log_cluster.head, log_cluster.other}
    assert listing[log_cluster.head]["head"] is True
    names = {f["name"] for f in listing[log_cluster.other]["files"]}
    assert {f"worker-{worker_id}-{pid}.out", f"worker-{worker_id}-{pid}.err"} <= names
    assert f"node-{log_cluster.head}.log" in {f["name"] for f in listing[log_cluster.head]["files"]}
    text = log_cluster.logs().stdout
    assert f"Node {log_cluster.head} (head, 127.0.0.1):" in text
    assert f"worker-{worker_id}-{pid}.out" in text
    # the API: one node's files by group
    groups = list_logs(node_id=log_cluster.other, glob_filter=f"worker-{worker_id}-*")
    assert groups == {"worker_out": [f"worker-{worker_id}-{pid}.out"], "worker_err": [f"worker-{worker_id}-{pid}.err"]}


def test_cli_actor_tail_err_worker_and_node(log_cluster):
    actor = Printer.options(**ON_OTHER).remote()
    lines = [f"line {i} {uuid.uuid4().hex[:6]}" for i in range(20)]
    pid = actorcore.get(actor.say.remote(*lines, err="to stderr"))
    ident = actor_id(actor)
    wait_until(lambda: lines[-1] in log_cluster.logs("actor", "--id", ident).stdout, 60, "the actor's last line")
    assert lines_of(log_cluster.logs("actor", "--id", ident, "--tail", "3").stdout) == lines[-3:]
    assert lines_of(log_cluster.logs("actor", "--id", ident, "--tail", "-1").stdout)[-20:] == lines
    assert lines_of(log_cluster.logs("actor", "--id", ident, "--err").stdout)[-1:] == ["to stderr"]
    by_pid = log_cluster.logs("worker", "--pid", str(pid), "--tail", "2").stdout
    assert lines_of(by_pid) == lines[-2:]  # found on the one node that has a worker with that pid
    assert lines_of(log_cluster.logs("worker", "--pid", str(pid), "--node-id", log_cluster.other[:8],
                                     "--err").stdout)[-1:] == ["to stderr"]
    assert log_cluster.logs("node", "--node-id", log_cluster.head).returncode == 0
    # the API, from the driver
    assert lines_of("".join(get_log(actor_id=ident, tail=2))) == lines[-2:]  # its record is there by now
    assert lines_of("".join(get_log(actor_id=ident, suffix="err")))[-1:] == ["to stderr"]
    actorcore.kill(actor)


def test_cli_errors_name_what_is_wrong(log_cluster):
    missing = log_cluster.logs("actor", "--id", "nosuchactor", check=False)
    assert missing.returncode == 1
    assert "no actor with id 'nosuchactor'" in missing.stderr
    no_worker = log_cluster.logs("worker", "--pid", "999999999", check=False)
    assert no_worker.returncode == 1 and "no node has log files of a worker with pid 999999999" in no_worker.stderr
    bad_tail = log_cluster.logs("actor", "--id", "x", "--tail", "-5", check=False)
    assert bad_tail.returncode == 2 and "--tail" in bad_tail.stderr
    unknown_node = log_cluster.logs("node", "--node-id", "zzzz", check=False)
    assert unknown_node.returncode == 1 and "node id 'zzzz' names no live node" in unknown_node.stderr


def test_follow_prints_new_lines_until_interrupted(log_cluster):
    actor = Printer.options(**ON_HEAD).remote()
    actorcore.get(actor.say.remote("before following"))
    ident = actor_id(actor)
    wait_until(lambda: "before following" in log_cluster.logs("actor", "--id", ident).stdout, 60, "the first line")
    follower = subprocess.Popen([sys.executable, "-m", "actorcore", "logs", "actor", "--id", ident, "--follow",
                                 "--interval", "0.1"], env=log_cluster.cluster.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        selector = selectors.DefaultSelector()
        selector.register(follower.stdout, selectors.EVENT_READ)

        def until(text: str) -> None:
            deadline = time.monotonic() + 90
            while not any(text in line for line in seen):
                assert time.monotonic() < deadline, f"--follow did not print {text!r}; it printed {seen}"
                assert follower.poll() is None, f"--follow ended: {follower.stderr.read()}"
                if selector.select(timeout=1):
                    seen.append(follower.stdout.readline())

        until("before following")
        for round_ in range(2):
            marker = f"followed {round_} {uuid.uuid4().hex}"
            actorcore.get(actor.say.remote(marker))
            until(marker)
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=60) == 0
        selector.close()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(timeout=30)
        follower.stdout.close()
        follower.stderr.close()
    actorcore.kill(actor)


def test_a_crashed_actors_log_stays_readable(log_cluster):
    actor = Printer.options(**ON_OTHER).remote()
    last_words = f"last words {uuid.uuid4().hex}"
    actorcore.get(actor.say.remote(last_words))
    ident = actor_id(actor)
    # the actor's record (its node and pid) reaches etcd a moment after its first call
    wait_until(lambda: last_words in "".join(get_log(actor_id=ident)), 60, "the actor's line", retry_on=(LogError,))
    with pytest.raises(actorcore.exceptions.ActorDiedError):
        actorcore.get(actor.crash.remote())
    wait_until(lambda: _state(ident) == "DEAD", 60, "the actor's record DEAD")
    # its worker may have run tasks before it became the actor's: their lines come first
    assert lines_of("".join(get_log(actor_id=ident)))[-2:] == [last_words, "crashing now"]
    assert last_words in log_cluster.logs("actor", "--id", ident).stdout


def _state(ident: str) -> str | None:
    from actorcore.util.logs import LogConnection

    with LogConnection.open() as connection:
        return (connection.run(connection._actor_record(ident), 30) or {}).get("state")


def test_files_rotate_at_the_size_bound(log_cluster):
    line = "r" * 99  # 100 bytes with its newline
    count = 3 * ROTATION_BYTES // 100 + 5

    @actorcore.remote(**ON_OTHER)
    def chatty() -> tuple[str, int]:
        for i in range(count):
            print(f"{i:06d}{line[6:]}", flush=True)
        return actorcore.get_runtime_context().get_worker_id(), os.getpid()

    worker_id, pid = actorcore.get(chatty.remote())
    out = log_cluster.folder(log_cluster.other) / f"worker-{worker_id}-{pid}.out"
    last = f"{count - 1:06d}"
    wait_until(lambda: last in read_file(out), 60, "the last line in the current file")
    backups = [out.with_name(f"{out.name}.{i}") for i in range(1, BACKUPS + 2)]
    assert [path.exists() for path in backups] == [True] * BACKUPS + [False]
    for path in [out, *backups[:BACKUPS]]:
        assert path.stat().st_size <= ROTATION_BYTES
    assert lines_of("".join(get_log(node_id=log_cluster.other, pid=pid, tail=1))) == [f"{last}{line[6:]}"]
    listed = list_logs(node_id=log_cluster.other, glob_filter=f"worker-{worker_id}-*.out*")["worker_out"]
    assert sorted(listed) == sorted([out.name, *(p.name for p in backups[:BACKUPS])])


def test_ended_workers_keep_their_files_up_to_a_bound(log_cluster):
    actors = [Printer.options(**ON_OTHER).remote() for _ in range(DEAD_WORKERS_KEPT + 2)]
    where = actorcore.get([actor.where.remote() for actor in actors])
    for actor in actors:
        actorcore.kill(actor)
    folder = log_cluster.folder(log_cluster.other)

    def kept():
        return [f"worker-{w}-{p}.out" for w, p in where if (folder / f"worker-{w}-{p}.out").exists()]

    # every one of them ended, and the node removed the files of all but the newest ended workers
    wait_until(lambda: len(kept()) <= DEAD_WORKERS_KEPT, 60, f"at most {DEAD_WORKERS_KEPT} ended workers' files")


def test_paths_out_of_the_log_folder_are_refused(log_cluster):
    (log_cluster.cluster.home / "logs" / "secret.txt").write_text("not a log")
    for name in ("../secret.txt", "../../token", "/etc/passwd", ".."):
        with pytest.raises(LogError, match="is not a log file name"):
            "".join(get_log(node_id=log_cluster.head, filename=name))
    with pytest.raises(LogError, match=r"has no log file 'secret\.txt'"):
        "".join(get_log(node_id=log_cluster.head, filename="secret.txt"))
    status, body = log_cluster.get(f"/api/logs?node_id={log_cluster.head}&name=..%2Ftoken", log_cluster.token)
    assert status == 404 and "is not a log file name" in as_json(body)["error"]
    refused = log_cluster.logs("cluster", "../token", "--node-id", log_cluster.head, check=False)
    assert refused.returncode == 1 and "no log file matches" in refused.stderr


def test_dashboard_log_view_needs_credentials_and_shows_the_actors_lines(log_cluster):
    actor = Printer.options(**ON_OTHER).remote()
    line = f"<b>dashboard line</b> {uuid.uuid4().hex}"
    actorcore.get(actor.say.remote(line, err="dashboard err"))
    ident = actor_id(actor)
    status, body = log_cluster.get(f"/api/logs?actor_id={ident}")
    assert status == 401 and "unauthorized" in as_json(body)["error"]
    status, _ = log_cluster.get(f"/logs?actor_id={ident}")
    assert status == 303  # to the login page
    status, _ = log_cluster.get(f"/api/logs?actor_id={ident}", "wrong token")
    assert status == 401

    def answer():
        status, body = log_cluster.get(f"/api/logs?actor_id={ident}&tail=5", log_cluster.token)
        return as_json(body) if status == 200 and line in as_json(body)["text"] else None

    found = wait_until(answer, 60, "the actor's line in /api/logs")
    assert found["node_id"] == log_cluster.other and found["name"].endswith(".out")
    status, body = log_cluster.get(f"/api/logs?actor_id={ident}&stream=stderr", log_cluster.token)
    assert status == 200 and as_json(body)["text"].endswith("dashboard err\n")
    status, body = log_cluster.get(f"/api/logs?node_id={log_cluster.other}&name={found['name']}"
                                   f"&offset={found['offset']}", log_cluster.token)
    assert status == 200 and as_json(body)["text"] == "" and as_json(body)["offset"] == found["offset"]
    status, body = log_cluster.get(f"/api/logs?actor_id={ident}&stream=nope", log_cluster.token)
    assert status == 400 and "stream must be" in as_json(body)["error"]
    status, body = log_cluster.get("/logs?actor_id=" + ident, log_cluster.token)
    assert status == 200 and b'src="/logs/view.js"' in body
    status, body = log_cluster.get("/logs/view.js", log_cluster.token)
    assert status == 200 and b"textContent" in body
    actorcore.kill(actor)
