"""What a runtime env may say (`actorcore.runtime_env.spec`): Ray's keys normalized, bad ones
refused with the key and the reason, and Ray's merge rule for a job's env and a task's."""

from __future__ import annotations

import pytest

from actorcore.runtime_env.spec import canonical, merge, validate

pytestmark = pytest.mark.timeout(30)


def test_rays_keys_are_normalized(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nsix==1.16.0\n\nidna\n")
    assert validate(None) == {} and validate({}) == {}
    assert validate({"env_vars": {"A": "1"}, "working_dir": ".", "py_modules": ("mods", "pkg://" + "a" * 64 + ".zip"),
                     "pip": ["six"], "excludes": ["*.log"], "config": {"setup_timeout_seconds": 60}}) == {
        "env_vars": {"A": "1"}, "working_dir": ".", "py_modules": ["mods", "pkg://" + "a" * 64 + ".zip"],
        "pip": {"packages": ["six"]}, "excludes": ["*.log"], "config": {"setup_timeout_seconds": 60}}
    assert validate({"pip": str(requirements)}) == {"pip": {"packages": ["six==1.16.0", "idna"]}}
    assert validate({"uv": {"packages": ["six"], "pip_check": False}}) == {
        "pip": {"packages": ["six"], "pip_check": False}}
    assert validate({"working_dir": None}) == {}


@pytest.mark.parametrize(("runtime_env", "error", "message"), [
    ([], TypeError, "runtime_env must be a dict, got list"),
    ({"workdir": "."}, ValueError, "unknown key 'workdir'; the keys are env_vars, working_dir"),
    ({"conda": "env"}, ValueError, "'conda' is not supported: conda environments are not built"),
    ({"env_vars": {"N": 1}}, TypeError, r"runtime_env\['env_vars'\] must map str to str; 'N': 1 is not"),
    ({"working_dir": "s3://bucket/code.zip"}, ValueError, r"remote URIs \(s3://\) are not fetched"),
    ({"py_modules": "mods"}, TypeError, r"runtime_env\['py_modules'\] must be a list"),
    ({"pip": []}, TypeError, r"\['packages'\] must be a non-empty list of requirement strings"),
    ({"pip": "/no/such/requirements.txt"}, ValueError, "cannot read the requirements file"),
    ({"pip": {"packages": ["six"], "index": "x"}}, ValueError, "unknown key\\(s\\) 'index'"),
    ({"pip": ["six"], "uv": ["six"]}, ValueError, "give 'pip' or 'uv', not both"),
    ({"config": {"setup_timeout_seconds": 0}}, ValueError, "must be an int > 0, or -1 for no limit, got 0"),
    ({"excludes": "*.log"}, TypeError, "must be a list of gitignore patterns"),
])
def test_bad_runtime_envs_are_refused_naming_the_key(runtime_env, error, message):
    with pytest.raises(error, match=message):
        validate(runtime_env)


def test_a_tasks_keys_replace_its_jobs_and_env_vars_merge():
    job = {"env_vars": {"A": "job", "B": "job"}, "working_dir": "pkg://j", "pip": {"packages": ["six"]}}
    task = {"env_vars": {"B": "task", "C": "task"}, "working_dir": "pkg://t"}
    assert merge(job, task) == {"env_vars": {"A": "job", "B": "task", "C": "task"}, "working_dir": "pkg://t",
                                "pip": {"packages": ["six"]}}
    assert merge(job, {}) == job and merge({}, task) == task


def test_equal_envs_have_one_name():
    assert canonical({}) == ""
    assert canonical({"env_vars": {"B": "2", "A": "1"}, "pip": {"packages": ["x"]}}) == canonical(
        {"pip": {"packages": ["x"]}, "env_vars": {"A": "1", "B": "2"}})
