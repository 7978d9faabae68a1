"""``actorcore run`` / ``python -m actorcore.run``: programs written for Ray run unmodified,
``import ray`` resolving to actorcore in the driver and in the workers of its tasks and actors
(local mode and a cluster of ``actorcore start``), and nowhere else.

Every program runs in a real process; its workers are real worker processes. This venv has
no real Ray: outside ``actorcore run`` ``import ray`` fails as for any missing module, and a
fake ``ray`` package on PYTHONPATH stands for a real Ray installed beside actorcore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actorcore import cluster_files as files
from actorcore.gcs.etcd_server import _free_port
from actorcore.ray_compat import RAY_API_VERSION, RAY_MODULES
from actorcore.testing import processes_of, wait_until

from .test_cli_cluster import _kill_leftovers

pytestmark = pytest.mark.timeout(180)

ACTORCORE_SCRIPT = Path(sys.executable).parent / "actorcore"

# A program's own module, imported by reference wherever one of its objects is unpickled:
# a worker that gets a Rect imports it, and with it `import ray`.
SHAPES = """
import ray


class Rect:
    def __init__(self, width, height):
        self.width, self.height = width, height

    def area(self):
        return ray.get(ray.put(self.width * self.height))
"""

PROGRAM = """
import json
import sys

import actorcore
import ray
import ray.exceptions
import ray.util
from ray import ActorHandle, ObjectRef
from ray.exceptions import RayActorError, RayTaskError

from shapes import Rect


@ray.remote
def measure(rect):
    return rect.area()


@ray.remote
def inside_a_task():
    import ray as ray_here
    import ray.runtime_context
    return [ray_here is ray, ray_here.__name__, ray.runtime_context.__name__,
            isinstance(measure.remote(Rect(1, 2)), ObjectRef)]


@ray.remote
class Keeper:
    def look(self):
        import ray.util
        from ray.exceptions import RayTaskError as TaskErrorHere
        return [ray.util.__name__, TaskErrorHere.__module__, ray.get(measure.remote(Rect(2, 3)))]


@ray.remote
def fails():
    raise KeyError("lost")


if __name__ == "__main__":
    ray.init(num_cpus=2) if len(sys.argv) < 2 else ray.init(address=sys.argv[1])
    keeper = Keeper.remote()
    report = {
        "task": ray.get(inside_a_task.remote()),
        "actor": ray.get(keeper.look.remote()),
        "rect": ray.get(measure.remote(Rect(4, 5))),
        "handle": isinstance(keeper, ActorHandle),
        "version": ray.__version__,
        "same objects": [ray.get is actorcore.get, ray.util is actorcore.util],
    }
    try:
        ray.get(fails.remote())
    except RayTaskError as error:
        report["error"] = [isinstance(error, KeyError), isinstance(error, RayActorError)]
    print(json.dumps(report))
    ray.shutdown()
"""

EXPECTED = {
    "task": [True, "ray", "actorcore.runtime_context", True],
    "actor": ["actorcore.util", "actorcore.exceptions", 6],
    "rect": 20,
    "handle": True,
    "error": [True, False],
    "same objects": [True, True],
}


def _write(directory: Path, **sources: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return directory


def _run(*command: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def _report(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_ray_program_runs_unmodified_its_workers_resolving_ray_too(tmp_path):
    program = _write(tmp_path / "program", shapes=SHAPES, main=PROGRAM)
    report = _report(_run(str(ACTORCORE_SCRIPT), "run", "main.py", cwd=program))
    assert report.pop("version") == RAY_API_VERSION
    assert report == EXPECTED


def test_python_m_actorcore_run_runs_it_too(tmp_path):
    program = _write(tmp_path / "program", shapes=SHAPES, main=PROGRAM)
    report = _report(_run(sys.executable, "-m", "actorcore.run", str(program / "main.py"), cwd=tmp_path))
    report.pop("version")
    assert report == EXPECTED


def test_a_cluster_started_with_actorcore_start_runs_it(tmp_path, actorcore_home):
    program = _write(tmp_path / "program", shapes=SHAPES, main=PROGRAM)
    port = _free_port()
    try:
        # started from the program's directory: the node's workers import `shapes` from there
        started = _run(sys.executable, "-m", "actorcore", "start", "--head", "--port", str(port),
                       "--num-cpus", "2", cwd=program, timeout=90)
        assert started.returncode == 0, started.stdout + started.stderr
        report = _report(_run(str(ACTORCORE_SCRIPT), "run", "main.py", f"127.0.0.1:{port}", cwd=program))
        report.pop("version")
        assert report == EXPECTED
    finally:
        if files.node_files():
            _run(sys.executable, "-m", "actorcore", "stop", "--force", cwd=tmp_path, timeout=90)
        _kill_leftovers(actorcore_home)
    wait_until(lambda: processes_of(actorcore_home) == [], 30, "the cluster's processes to end")


def test_every_mapped_ray_module_is_its_actorcore_module_or_names_what_is_missing(tmp_path):
    check = _write(tmp_path, check="""
        import importlib
        import json
        import sys

        from actorcore.ray_compat import RAY_MODULES

        report = {}
        for name, target in RAY_MODULES.items():
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as error:
                report[name] = [error.name, str(error)]
            else:
                actorcore_module = importlib.import_module(target)
                same = module.init is actorcore_module.init if name == "ray" else module is actorcore_module
                report[name] = same and sys.modules[name] is module
        print(json.dumps(report))
        """)
    report = _report(_run(str(ACTORCORE_SCRIPT), "run", "check.py", cwd=check))
    assert set(report) == set(RAY_MODULES)
    for name, outcome in report.items():
        missing = (f"No module named {name!r}: actorcore provides it as {RAY_MODULES[name]}, which this "
                   "installation of actorcore does not have")
        assert outcome is True or outcome == [name, missing], name
    # the parts of actorcore that every version has
    for name in ("ray", "ray.actor", "ray.cloudpickle", "ray.exceptions", "ray.remote_function",
                 "ray.runtime_context", "ray.util"):
        assert report[name] is True, name


def test_a_mapped_module_that_does_not_exist_yet_raises_naming_it(tmp_path):
    program = _write(tmp_path, future="""
        from actorcore import ray_compat

        ray_compat.RAY_MODULES["ray.util.future_part"] = "actorcore.util.future_part"
        try:
            import ray.util.future_part
        except ModuleNotFoundError as error:
            print(repr(error.name), error)
        import ray.util.future_part
        """)
    result = _run(str(ACTORCORE_SCRIPT), "run", "future.py", cwd=program)
    message = ("No module named 'ray.util.future_part': actorcore provides it as actorcore.util.future_part, "
               "which this installation of actorcore does not have")
    assert result.stdout == f"'ray.util.future_part' {message}\n"
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"ModuleNotFoundError: {message}"


def test_a_ray_module_actorcore_does_not_provide_raises_module_not_found(tmp_path):
    program = _write(tmp_path, libraries="""
        import ray

        try:
            from ray import tune
        except ImportError as error:  # how programs probe for an optional part
            print(type(error).__name__, repr(error.name), error)
        import ray.data
        """)
    result = _run(str(ACTORCORE_SCRIPT), "run", "libraries.py", cwd=program)
    assert result.returncode == 1
    assert result.stdout == ("ModuleNotFoundError 'ray.tune' No module named 'ray.tune': actorcore runs Ray Core "
                             "programs; ray.tune is not provided\n")
    assert result.stderr.splitlines()[-1] == (
        "ModuleNotFoundError: No module named 'ray.data': actorcore runs Ray Core programs; ray.data is not provided")


@pytest.mark.parametrize("arguments", [["exit", "7", "-m", "--flag"], ["message"], ["raise"], ["end"]])
def test_argv_exit_code_and_traceback_are_what_python_gives(tmp_path, arguments):
    program = _write(tmp_path / "dir", plain="""
        import sys

        print(sys.argv, __name__, __file__, sys.path[0], __spec__, __package__)
        if sys.argv[1] == "exit":
            sys.exit(int(sys.argv[2]))
        if sys.argv[1] == "message":
            sys.exit("goodbye")


        def fail():
            raise ValueError("bad value")


        if sys.argv[1] == "raise":
            fail()
        """)
    expected = _run(sys.executable, "dir/plain.py", *arguments, cwd=tmp_path)
    for runner in ([str(ACTORCORE_SCRIPT), "run"], [sys.executable, "-m", "actorcore.run"]):
        result = _run(*runner, "dir/plain.py", *arguments, cwd=tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (
            expected.returncode, expected.stdout, expected.stderr), runner
    assert str(program / "plain.py") in expected.stdout
    assert expected.returncode == {"exit": 7, "message": 1, "raise": 1, "end": 0}[arguments[0]]


def test_run_m_runs_a_module_as_python_m_does(tmp_path):
    _write(tmp_path / "pkg", __init__="", tool="""
        import sys

        import ray

        print(__name__, sys.argv[1:], ray.__version__)
        sys.exit(3)
        """)
    result = _run(str(ACTORCORE_SCRIPT), "run", "-m", "pkg.tool", "a", "--b", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (3, f"__main__ ['a', '--b'] {RAY_API_VERSION}\n"), result.stderr
    missing = _run(str(ACTORCORE_SCRIPT), "run", "-m", "no_such_module", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (1, "actorcore run: No module named 'no_such_module'\n")


def test_a_missing_script_or_no_script_is_an_error_that_names_it(tmp_path):
    missing = _run(str(ACTORCORE_SCRIPT), "run", "nowhere.py", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == (f"actorcore run: can't open file {str(tmp_path / 'nowhere.py')!r}: "
                              "[Errno 2] No such file or directory\n")
    nothing = _run(str(ACTORCORE_SCRIPT), "run", cwd=tmp_path)
    assert nothing.returncode == 2
    assert "the program to run is missing" in nothing.stderr


def test_outside_actorcore_run_nothing_named_ray_is_importable(tmp_path):
    program = _write(tmp_path, plain_driver="""
        import importlib.util
        import json

        import actorcore
        import actorcore.ray_compat
        import actorcore.run
        import actorcore.util

        report = {"driver": importlib.util.find_spec("ray") is None}


        @actorcore.remote
        def probe():
            try:
                import ray  # noqa: F401
            except ModuleNotFoundError as error:
                return str(error)
            return "imported"


        actorcore.init(num_cpus=1)
        report["worker"] = actorcore.get(probe.remote())
        print(json.dumps(report))
        actorcore.shutdown()
        """)
    report = _report(_run(sys.executable, "plain_driver.py", cwd=program))
    assert report == {"driver": True, "worker": "No module named 'ray'"}


def test_a_ray_installed_beside_actorcore_still_imports_in_other_processes(tmp_path):
    fake = _write(tmp_path / "site" / "ray", __init__='FAKE = "the installed ray"\n')
    program = _write(tmp_path / "program", aliased="""
        import json
        import subprocess
        import sys

        import ray


        def which(ray_module):
            return getattr(ray_module, "FAKE", "actorcore's")


        @ray.remote
        def in_worker():
            import ray as ray_here
            return which(ray_here)


        ray.init(num_cpus=1)
        other = subprocess.run([sys.executable, "-c", "import ray; print(ray.FAKE)"], capture_output=True,
                               text=True, check=True)
        print(json.dumps({"driver": which(ray), "worker": ray.get(in_worker.remote()),
                          "other process": other.stdout.strip()}))
        ray.shutdown()
        """, plain="""
        import json

        import actorcore
        import ray


        @actorcore.remote
        def in_worker():
            import ray as ray_here
            return ray_here.FAKE


        actorcore.init(num_cpus=1)
        print(json.dumps({"driver": ray.FAKE, "worker": actorcore.get(in_worker.remote())}))
        actorcore.shutdown()
        """)
    env = {"PYTHONPATH": str(fake.parent)}
    assert _report(_run(str(ACTORCORE_SCRIPT), "run", "aliased.py", cwd=program, env=env)) == {
        "driver": "actorcore's", "worker": "actorcore's", "other process": "the installed ray"}
    assert _report(_run(sys.executable, "plain.py", cwd=program, env=env)) == {
        "driver": "the installed ray", "worker": "the installed ray"}


def test_ray_address_is_where_init_connects(tmp_path):
    program = _write(tmp_path, connect="""
        import ray

        ray.init()
        """)
    env = {k: v for k, v in os.environ.items() if k != "ACTORCORE_ADDRESS"}
    result = subprocess.run([str(ACTORCORE_SCRIPT), "run", "connect.py"], cwd=program, capture_output=True,
                            text=True, timeout=60, check=False, env={**env, "RAY_ADDRESS": "auto"})
    assert result.returncode == 1
    # no cluster was started in this test's ACTORCORE_HOME: init() was told "auto", and says so
    assert result.stderr.splitlines()[-1].startswith(
        "ConnectionError: init(address='auto'): no actorcore cluster was started on this machine")


def test_ray_util_names_work_in_the_driver_and_in_workers(tmp_path):
    program = _write(tmp_path, library="""
        import json

        import ray
        from ray.util import ActorPool
        from ray.util.queue import Empty, Queue


        @ray.remote
        class Doubler:
            def double(self, n):
                return 2 * n


        @ray.remote
        def producer(queue):
            from ray.util.queue import Queue as QueueHere
            queue.put_nowait_batch([1, 2, 3])
            return isinstance(queue, QueueHere)


        ray.init(num_cpus=2)
        queue = Queue(maxsize=10)
        same_class = ray.get(producer.remote(queue))
        items = [queue.get(timeout=30) for _ in range(3)]
        try:
            queue.get_nowait()
        except Empty:
            empty = True
        pool = ActorPool([Doubler.remote(), Doubler.remote()])
        doubled = list(pool.map(lambda actor, n: actor.double.remote(n), items))
        print(json.dumps([same_class, items, empty, doubled]))
        ray.shutdown()
        """)
    assert _report(_run(str(ACTORCORE_SCRIPT), "run", "library.py", cwd=program)) == [True, [1, 2, 3], True, [2, 4, 6]]


def test_runtime_context_and_accelerator_names_resolve_as_rays_modules_give_them(tmp_path):
    program = _write(tmp_path, context="""
        import json

        import ray
        from ray.runtime_context import get_runtime_context
        from ray.util.accelerators import NVIDIA_TESLA_V100


        @ray.remote
        def where():
            from ray.runtime_context import get_runtime_context as inside
            return inside().get_task_id() is not None


        ray.init(num_cpus=1)
        print(json.dumps([get_runtime_context().get_job_id() == ray.get_runtime_context().get_job_id(),
                          ray.get(where.remote()), NVIDIA_TESLA_V100]))
        ray.shutdown()
        """)
    assert _report(_run(str(ACTORCORE_SCRIPT), "run", "context.py", cwd=program)) == [True, True, "V100"]
