"""Runtime envs across a real 3-node cluster: the driver's job working_dir, uploaded once, is
where tasks on every node import from; an actor's py_modules and env_vars reach the node it
lands on."""

from __future__ import annotations

import os

import pytest

import actorcore as ray

from .conftest import _session, _start_cluster

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    (root / "app").mkdir()
    (root / "app" / "shipped.py").write_text("import os\n\ndef where():\n    return os.environ['NODE_TAG']\n")
    (root / "mods" / "tools").mkdir(parents=True)
    (root / "mods" / "tools" / "__init__.py").write_text("ANSWER = 42\n")
    with _session(_start_cluster()) as cluster:
        ray.init(address=cluster.address, runtime_env={"working_dir": str(root / "app"),
                                                      "env_vars": {"NODE_TAG": "tagged"}})
        yield root


@ray.remote
def imports_shipped():
    import shipped

    return shipped.where(), ray.get_runtime_context().get_node_id()


def test_tasks_on_every_node_import_the_jobs_working_dir(job):
    refs = [imports_shipped.options(resources={name: 0.1}).remote() for name in ("A", "B", "C")]
    results = ray.get(refs)
    assert [tag for tag, _ in results] == ["tagged"] * 3
    assert len({node for _, node in results}) == 3


def test_an_actor_on_another_node_gets_its_py_modules(job):
    @ray.remote(resources={"C": 0.1}, runtime_env={"py_modules": [str(job / "mods" / "tools")],
                                                   "env_vars": {"NODE_TAG": "actor"}})
    class Tool:
        def answer(self):
            import tools

            return tools.ANSWER, os.environ["NODE_TAG"]

    assert ray.get(Tool.remote().answer.remote()) == (42, "actor")
