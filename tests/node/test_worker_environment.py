"""What a worker process's environment holds, seen from a task: the user's own str-hash seed
(none forced) and no cluster token, neither in the task's `os.environ` nor in a subprocess the
task starts. Each test runs a driver (``init()``, a local cluster) in a subprocess of its own,
with the environment under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from actorcore.env import SECRETS_FD_ENV, TOKEN_ENV

pytestmark = pytest.mark.timeout(120)

_DRIVER = """
import json, os, subprocess
import actorcore

@actorcore.remote
def environment():
    child = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
    return {"environ": dict(os.environ), "child": child, "hash": hash("actorcore")}

actorcore.init(num_cpus=2)
try:
    print(json.dumps(actorcore.get([environment.remote() for _ in range(2)], timeout=60)))
finally:
    actorcore.shutdown()
"""


def _task_environments(tmp_path, **env: str) -> list[dict]:
    """What two tasks see, run by a driver whose environment is ours updated with `env`
    (a value None removes the variable)."""
    environ = {k: v for k, v in os.environ.items() if k not in env}
    environ.update({k: v for k, v in env.items() if v is not None})
    environ["ACTORCORE_HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, "-c", _DRIVER], capture_output=True, text=True, env=environ,
                            timeout=100, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_workers_keep_the_users_hash_seed_and_are_not_forced_to_one(tmp_path):
    seeded = _task_environments(tmp_path, PYTHONHASHSEED="1234")
    assert {seen["environ"].get("PYTHONHASHSEED") for seen in seeded} == {"1234"}
    unseeded = _task_environments(tmp_path, PYTHONHASHSEED=None)
    assert all("PYTHONHASHSEED" not in seen["environ"] for seen in unseeded)
    assert all("PYTHONHASHSEED=" not in seen["child"] for seen in unseeded)


def test_no_task_nor_its_subprocess_sees_the_cluster_token(tmp_path):
    # A driver may have the token in its environment (a remote driver does): it is not passed on.
    seen = _task_environments(tmp_path, ACTORCORE_TOKEN="0123456789abcdef0123456789abcdef")
    for task in seen:
        assert not [k for k in task["environ"] if k in (TOKEN_ENV, SECRETS_FD_ENV)], task["environ"]
        assert TOKEN_ENV not in task["child"] and SECRETS_FD_ENV not in task["child"]
        assert "0123456789abcdef0123456789abcdef" not in json.dumps(task)
