"""A runtime env's pip requirements on a real local node: a wheel built here (no network),
installed once into a virtual environment of the node's, importable by the tasks of that env
only; a wheel in py_modules; an installer that fails fails the task with its output."""

from __future__ import annotations

import base64
import hashlib
import zipfile

import pytest

import actorcore as ray
from actorcore.exceptions import RuntimeEnvSetupError

pytestmark = pytest.mark.timeout(180)


def build_wheel(folder, name: str, value: str):
    """A pure-Python wheel of package `name` whose VALUE is `value` (what pip and uv accept)."""
    files = {f"{name}/__init__.py": f"VALUE = {value!r}\n",
             f"{name}-0.1.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
             f"{name}-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                             "Tag: py3-none-any\n"}
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(text.encode())}" for path, text in files.items()]
    files[f"{name}-0.1.dist-info/RECORD"] = "\n".join([*record, f"{name}-0.1.dist-info/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture(scope="module")
def session():
    ray.init(num_cpus=2)
    yield
    ray.shutdown()


@ray.remote
def value_of(module: str):
    import importlib

    try:
        return importlib.import_module(module).VALUE
    except ModuleNotFoundError:
        return None


def test_a_pip_requirement_is_installed_for_its_env_only(session, tmp_path):
    wheel = build_wheel(tmp_path, "tinypkg", "installed from a wheel")
    with_pip = value_of.options(runtime_env={"pip": [str(wheel)]})
    assert ray.get([with_pip.remote("tinypkg") for _ in range(3)]) == ["installed from a wheel"] * 3
    assert ray.get(value_of.remote("tinypkg")) is None  # not in the node's own environment


def test_a_pure_wheel_in_py_modules_is_importable(session, tmp_path):
    wheel = build_wheel(tmp_path, "wheelmod", "imported from py_modules")
    assert ray.get(value_of.options(runtime_env={"py_modules": [str(wheel)]}).remote("wheelmod")) == (
        "imported from py_modules")


def test_an_installer_that_fails_fails_the_task_with_its_output(session, tmp_path):
    missing = tmp_path / "nowhere-0.1-py3-none-any.whl"
    with pytest.raises(RuntimeEnvSetupError, match=r"pip install failed \(exit code \d+\):\n(.|\n)*nowhere"):
        ray.get(value_of.options(runtime_env={"pip": [str(missing)]}).remote("nowhere"))
