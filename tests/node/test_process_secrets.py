"""process_secrets: a child process reads its secrets from an inherited pipe, keeps none of it in
its environment, and, when asked to, sees its parent's end close when the parent dies."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from actorcore.env import SECRETS_FD_ENV
from actorcore.process_secrets import hand_over

pytestmark = pytest.mark.timeout(60)

_CHILD = """
import json, os, select, sys
from actorcore.process_secrets import receive
secrets, fd = receive(keep_watch=len(sys.argv) > 1)
print(json.dumps({"secrets": secrets, "env": os.environ.get("ACTORCORE_SECRETS_FD")}), flush=True)
if fd is not None:
    select.select([fd], [], [])  # until the parent is gone
    print("parent gone" if os.read(fd, 1) == b"" else "data", flush=True)
"""


def _start(secrets: dict, *, keep_open: bool) -> tuple[subprocess.Popen, int | None]:
    handover = hand_over(secrets, dict(os.environ), keep_open=keep_open)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *(["watch"] if keep_open else [])],
                             env=handover.env, pass_fds=(handover.child_end,), stdout=subprocess.PIPE, text=True)
    handover.started()
    return child, handover.parent_end


def test_the_child_reads_its_secrets_and_keeps_nothing_in_its_environment():
    child, parent_end = _start({"token": "s3cr3t", "etcd_auth": None}, keep_open=False)
    out, _ = child.communicate(timeout=30)
    assert parent_end is None
    assert json.loads(out) == {"secrets": {"token": "s3cr3t", "etcd_auth": None}, "env": None}


def test_the_child_sees_its_parents_end_close():
    child, parent_end = _start({"token": "s3cr3t"}, keep_open=True)
    try:
        assert json.loads(child.stdout.readline())["secrets"] == {"token": "s3cr3t"}
        assert child.poll() is None  # still waiting: the parent holds its end
        os.close(parent_end)  # what the kernel does when the parent dies, by any signal
        assert child.stdout.readline().strip() == "parent gone"
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()


def test_without_a_handover_there_are_no_secrets():
    env = {k: v for k, v in os.environ.items() if k != SECRETS_FD_ENV}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=30,
                         check=True).stdout
    assert json.loads(out) == {"secrets": {}, "env": None}
