"""A job's entrypoint on a real head runs in the job's whole runtime env (py_modules on its
path, its pip requirements installed in a virtual environment of the head's before it starts;
an installer that fails or hangs fails the job, while other jobs go on), and its resources
(``entrypoint_num_cpus`` ...) are held in the head's scheduler for as long as it runs: a head
that can never have them fails the job at once, a busy one keeps it PENDING."""

from __future__ import annotations

import socket
import sys
import textwrap

import pytest

from actorcore.job_submission import JobDetails, JobStatus
from actorcore.testing import is_alive, wait_until
from tests.runtime_env.test_pip import build_wheel

pytestmark = pytest.mark.timeout(180)

MAIN = textwrap.dedent("""
    import os, sys
    import actorcore, shipped, tinypkg

    print("python:", sys.executable)
    print("venv:", os.environ["VIRTUAL_ENV"])
    print("imports:", shipped.WORDS, "/", tinypkg.VALUE)
    actorcore.init()

    @actorcore.remote
    def in_a_task():
        import shipped, tinypkg
        return shipped.WORDS, tinypkg.VALUE

    print("task:", actorcore.get(in_a_task.remote()))
""")


def ended(client, submission_id: str, timeout: float = 90) -> JobDetails:
    wait_until(lambda: client.get_job_status(submission_id).is_terminal(), timeout, f"job {submission_id} ended",
               details=lambda: client.get_job_info(submission_id))
    return client.get_job_info(submission_id)


def test_the_entrypoint_runs_with_the_jobs_py_modules_and_pip_requirements(head, tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "main.py").write_text(MAIN)
    (tmp_path / "modules" / "shipped").mkdir(parents=True)
    (tmp_path / "modules" / "shipped" / "__init__.py").write_text("WORDS = 'from py_modules'\n")
    wheel = build_wheel(tmp_path, "tinypkg", "from the pip requirements")
    client = head.client()
    submission_id = client.submit_job(entrypoint="python main.py", runtime_env={
        "working_dir": str(tmp_path / "code"), "py_modules": [str(tmp_path / "modules" / "shipped")],
        "pip": [str(wheel)]})
    info = ended(client, submission_id, timeout=150)
    logs = client.get_job_logs(submission_id)
    assert info.status == JobStatus.SUCCEEDED, (info, logs)
    venv = logs.split("venv: ", 1)[1].split()[0]
    assert logs.split("python: ", 1)[1].split()[0] == f"{venv}/bin/python", logs  # `python`: the venv's
    assert "imports: from py_modules / from the pip requirements" in logs, logs
    assert "task: ('from py_modules', 'from the pip requirements')" in logs, logs  # its tasks too


def test_an_installer_that_fails_fails_the_job_with_its_error(head, tmp_path):
    client = head.client()
    missing = tmp_path / "nowhere-0.1-py3-none-any.whl"
    submission_id = client.submit_job(entrypoint="echo never runs", runtime_env={"pip": [str(missing)]})
    info = ended(client, submission_id, timeout=120)
    assert info.status == JobStatus.FAILED and info.error_type == "runtime_env_setup_failed", info
    assert "pip install failed" in info.message and "nowhere" in info.message, info.message
    assert info.driver_exit_code is None and client.get_job_logs(submission_id) == ""


def test_a_hanging_install_times_out_while_other_jobs_go_on(head, tmp_path):
    with socket.socket() as silent:  # a package index that takes connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/slowpkg-0.1-py3-none-any.whl"
        client = head.client()
        runtime_env = {"pip": [f"slowpkg @ {url}"], "config": {"setup_timeout_seconds": 8}}
        hanging, stopped = (client.submit_job(entrypoint="echo never runs", runtime_env=runtime_env)
                            for _ in range(2))
        for submission_id in (hanging, stopped):
            wait_until(lambda s=submission_id: "setting up" in (client.get_job_info(s).message or ""), 30,
                       "the setup started")
        other = client.submit_job(entrypoint="echo meanwhile")  # the job manager is not held up
        assert ended(client, other, timeout=30).status == JobStatus.SUCCEEDED
        assert client.stop_job(stopped) is True  # a job PENDING on its setup stops at once
        assert ended(client, stopped, timeout=10).status == JobStatus.STOPPED
        assert client.get_job_status(hanging) == JobStatus.PENDING
        info = ended(client, hanging, timeout=60)
    assert info.status == JobStatus.FAILED and info.error_type == "runtime_env_setup_failed", info
    assert "within its 8 s" in info.message, info.message


def test_resources_the_head_never_has_fail_the_job_at_once(head):
    client = head.client()
    cpus = client.submit_job(entrypoint="echo never runs", entrypoint_num_cpus=3)
    widgets = client.submit_job(entrypoint="echo never runs", entrypoint_resources={"Widget": 1})
    for submission_id, named in ((cpus, "3 CPU (the node has 2)"), (widgets, "1 Widget (the node has 0)")):
        info = ended(client, submission_id, timeout=30)
        assert info.status == JobStatus.FAILED and info.error_type == "entrypoint_resources_infeasible", info
        assert named in info.message, info.message


def test_a_job_waits_pending_for_busy_resources_and_they_are_given_back(head):
    client = head.client()
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(600)"
    sleeper = f"exec {sys.executable} -c '{code}'"
    first = client.submit_job(entrypoint=sleeper, entrypoint_num_cpus=2)
    pid = int(wait_until(lambda: client.get_job_logs(first).strip(), 60, "the first job running"))
    assert client.get_job_status(first) == JobStatus.RUNNING
    waiting = client.submit_job(entrypoint=sleeper, entrypoint_num_cpus=1, entrypoint_memory=1000)
    stopped_early = client.submit_job(entrypoint=sleeper, entrypoint_num_cpus=1)
    for submission_id in (waiting, stopped_early):
        wait_until(lambda s=submission_id: "waiting for the head" in (client.get_job_info(s).message or ""), 30,
                   "the job waiting for its resources")
    info = client.get_job_info(waiting)
    assert info.status == JobStatus.PENDING and "CPU: 1, memory: 1000" in info.message, info

    assert client.stop_job(stopped_early) is True  # a PENDING job stops
    assert ended(client, stopped_early, timeout=30).status == JobStatus.STOPPED
    assert client.get_job_status(waiting) == JobStatus.PENDING  # the first still holds the CPUs
    assert client.stop_job(first) is True
    assert ended(client, first, timeout=30).status == JobStatus.STOPPED and not is_alive(pid)
    second_pid = int(wait_until(lambda: client.get_job_logs(waiting).strip(), 60, "the waiting job running"))
    assert client.get_job_status(waiting) == JobStatus.RUNNING
    assert client.stop_job(waiting) is True
    assert ended(client, waiting, timeout=30).status == JobStatus.STOPPED and not is_alive(second_pid)

    # whatever the end, the CPUs come back: each of these would wait for ever otherwise
    for entrypoint in ("true", "exit 3", "true"):
        assert ended(client, client.submit_job(entrypoint=entrypoint, entrypoint_num_cpus=2), timeout=30).status in (
            JobStatus.SUCCEEDED, JobStatus.FAILED)
