"""Runtime envs on a real local node: a job's working_dir and env_vars in every worker, a task's
and an actor's own env merged over the job's, py_modules, inheritance by nested tasks, a setup
that fails, and bad input refused before anything starts."""

from __future__ import annotations

import os

import pytest

import actorcore as ray
from actorcore.exceptions import RuntimeEnvSetupError
from actorcore.runtime_env.packaging import PackageError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    (root / "app").mkdir()
    (root / "app" / "shipped.py").write_text("VALUE = 'shipped with the job'\n")
    (root / "app" / "data.txt").write_text("read from the working dir\n")
    (root / "app" / "big.log").write_text("left out\n")
    (root / "libs" / "helpers").mkdir(parents=True)
    (root / "libs" / "helpers" / "__init__.py").write_text("def greet():\n    return 'hello from helpers'\n")
    ray.init(num_cpus=2, runtime_env={"working_dir": str(root / "app"), "excludes": ["*.log"],
                                      "env_vars": {"STAGE": "job", "SHARED": "job"}})
    yield root
    ray.shutdown()


@ray.remote
def probe():
    import shipped

    with open("data.txt") as file:
        data = file.read().strip()
    return shipped.VALUE, data, os.path.exists("big.log"), os.environ.get("STAGE"), os.environ.get("SHARED")


@ray.remote
def nested():
    return ray.get(probe.remote())


def test_every_task_runs_in_the_jobs_working_dir_with_its_env_vars(job):
    assert ray.get([probe.remote() for _ in range(4)]) == [
        ("shipped with the job", "read from the working dir", False, "job", "job")] * 4


def test_a_tasks_env_vars_merge_over_the_jobs_and_its_children_inherit_them(job):
    task_env = {"env_vars": {"SHARED": "task"}}
    assert ray.get(probe.options(runtime_env=task_env).remote())[3:] == ("job", "task")
    assert ray.get(nested.options(runtime_env=task_env).remote())[3:] == ("job", "task")
    assert ray.get(probe.remote())[3:] == ("job", "job")  # the job's own workers are unchanged


def test_an_actor_gets_its_py_modules_and_env_vars(job):
    @ray.remote(runtime_env={"py_modules": [str(job / "libs" / "helpers")], "env_vars": {"STAGE": "actor"}})
    class Greeter:
        def greet(self):
            import helpers

            return helpers.greet(), os.environ.get("STAGE"), os.environ.get("SHARED")

    greeter = Greeter.remote()
    assert ray.get(greeter.greet.remote()) == ("hello from helpers", "actor", "job")


def test_tasks_of_several_envs_share_the_nodes_cpus(job):
    refs = [probe.options(runtime_env={"env_vars": {"SHARED": f"env{i % 3}"}}).remote() for i in range(9)]
    assert [result[4] for result in ray.get(refs)] == [f"env{i % 3}" for i in range(9)]
    assert ray.get(probe.remote())[4] == "job"


def test_a_runtime_env_that_cannot_be_set_up_fails_its_task_and_its_actor(job):
    missing = {"py_modules": ["pkg://" + "0" * 64 + ".zip"]}
    with pytest.raises(RuntimeEnvSetupError, match="the cluster holds no package pkg://0000"):
        ray.get(probe.options(runtime_env=missing).remote())

    @ray.remote
    class Nothing:
        def ping(self):
            return "pong"

    with pytest.raises(RuntimeEnvSetupError, match="holds no package"):
        ray.get(Nothing.options(runtime_env=missing).remote().ping.remote())
    assert ray.get(probe.remote())[0] == "shipped with the job"


def test_bad_runtime_envs_are_refused_before_anything_runs(job, tmp_path):
    with pytest.raises(ValueError, match="unknown key 'workdir'"):
        probe.options(runtime_env={"workdir": "."})
    with pytest.raises(PackageError, match=r"working_dir '.*nowhere' does not exist"):
        probe.options(runtime_env={"working_dir": str(tmp_path / "nowhere")}).remote()

