"""Jobs on a real head: submission, status, logs, stop, list and delete over the Jobs API
(`actorcore.job_submission`), and the API's authentication."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import textwrap

import pytest

from actorcore.job_submission import JobDetails, JobStatus, JobSubmissionError
from actorcore.testing import is_alive, wait_until

pytestmark = pytest.mark.timeout(180)

DRIVER = textwrap.dedent("""
    import json, os
    import actorcore

    actorcore.init()

    @actorcore.remote
    def square(x):
        return x * x

    print("squares:", actorcore.get([square.remote(i) for i in range(4)]))
    print("greeting:", os.environ["GREETING"])
    print("runtime_env:", json.loads(os.environ["ACTORCORE_RUNTIME_ENV"])["env_vars"])
    print("driver:", actorcore.get_runtime_context().get_job_id(), os.getpid())
""")


def ended(client, submission_id: str, timeout: float = 90) -> JobDetails:
    wait_until(lambda: client.get_job_status(submission_id).is_terminal(), timeout, f"job {submission_id} ended")
    return client.get_job_info(submission_id)


def test_a_job_runs_a_driver_on_the_cluster(head, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    client = head.client()
    submission_id = client.submit_job(entrypoint=f"{sys.executable} {script}", metadata={"owner": "tests"},
                                      runtime_env={"env_vars": {"GREETING": "hello from the job"}})
    assert client.get_job_status(submission_id) in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCEEDED)

    async def tail() -> str:
        return "".join([chunk async for chunk in client.tail_job_logs(submission_id)])

    followed = asyncio.run(tail())  # ends once the job has ended
    info = ended(client, submission_id)
    assert info.status == "SUCCEEDED" and info.driver_exit_code == 0, info
    assert info.metadata == {"owner": "tests"} and info.entrypoint.endswith("driver.py")
    assert info.start_time <= info.end_time and info.type == "SUBMISSION"
    logs = client.get_job_logs(submission_id)
    assert "squares: [0, 1, 4, 9]" in logs and "greeting: hello from the job" in logs, logs
    assert "runtime_env: {'GREETING': 'hello from the job'}" in logs
    assert followed == logs
    job_id, pid = logs.split("driver: ", 1)[1].split()[:2]
    assert info.job_id == job_id and info.driver_info["pid"] == pid, info  # the driver it started told it
    head_node = next(record for record in head.cluster.node_records() if record.get("head"))
    assert info.driver_node_id == head_node["node_id"], (info, head_node)


def test_a_failing_entrypoint_fails_with_its_exit_code_and_log(head):
    client = head.client()
    code = "import sys; print('about to fail', flush=True); sys.exit(3)"
    submission_id = client.submit_job(entrypoint=f"{sys.executable} -c \"{code}\"")
    info = ended(client, submission_id)
    assert info.status == JobStatus.FAILED and info.driver_exit_code == 3
    assert "exited with code 3" in info.message and "about to fail" in info.message, info.message


def test_stopping_a_job_leaves_no_process(head):
    client = head.client()
    # the entrypoint's child ignores SIGTERM: the stop must kill it after the grace period
    code = ("import os, signal, subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', "
            "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)']); "
            "print('pids', os.getpid(), child.pid, flush=True); time.sleep(600)")
    submission_id = client.submit_job(entrypoint=f"exec {sys.executable} -c \"{code}\"")
    logs = wait_until(lambda: "pids" in client.get_job_logs(submission_id) and client.get_job_logs(submission_id),
                      60, "the job printed its pids")
    pids = [int(word) for word in logs.split("pids", 1)[1].split()[:2]]
    assert client.get_job_status(submission_id) == JobStatus.RUNNING
    assert client.stop_job(submission_id) is True
    info = ended(client, submission_id, timeout=30)
    assert info.status == JobStatus.STOPPED, info
    wait_until(lambda: not any(is_alive(pid) for pid in pids), 10, "the job's processes gone")
    assert client.stop_job(submission_id) is False  # it has ended


def test_list_delete_and_duplicate_ids(head):
    client = head.client()
    assert client.submit_job(entrypoint="echo one", submission_id="job-one") == "job-one"
    with pytest.raises(JobSubmissionError, match=r"job-one.*already exists") as raised:
        client.submit_job(entrypoint="echo again", submission_id="job-one")
    assert raised.value.status == 400
    assert ended(client, "job-one").status == JobStatus.SUCCEEDED
    assert "job-one" in {job.submission_id for job in client.list_jobs()}

    from actorcore.util import state

    (row,) = state.list_jobs(filters=[("submission_id", "=", "job-one")])
    assert (row.status, row.entrypoint, row.type) == ("SUCCEEDED", "echo one", "SUBMISSION")
    status = head.cluster.cli("status").stdout
    assert "job-one" in status and "SUCCEEDED" in status, status

    assert client.delete_job("job-one") is True
    assert "job-one" not in {job.submission_id for job in client.list_jobs()}
    with pytest.raises(JobSubmissionError, match="no job has the submission id 'job-one'") as raised:
        client.get_job_info("job-one")
    assert raised.value.status == 404


def test_a_running_job_cannot_be_deleted_and_bad_submissions_are_refused(head):
    client = head.client()
    submission_id = client.submit_job(entrypoint="sleep 600")
    with pytest.raises(JobSubmissionError, match="stop it before deleting it"):
        client.delete_job(submission_id)
    client.stop_job(submission_id)
    assert ended(client, submission_id, timeout=30).status == JobStatus.STOPPED
    with pytest.raises(JobSubmissionError, match="entrypoint must be a non-empty shell command"):
        client.submit_job(entrypoint=" ")
    with pytest.raises(TypeError, match=r"runtime_env\[.env_vars.\] must map str to str"):
        client.submit_job(entrypoint="true", runtime_env={"env_vars": {"N": 1}})
    with pytest.raises(ValueError, match="does not exist"):
        client.submit_job(entrypoint="true", runtime_env={"working_dir": "/no/such/folder"})
    with pytest.raises(ValueError, match=r"remote URIs \(s3://\) are not fetched by actorcore"):
        client.submit_job(entrypoint="true", runtime_env={"working_dir": "s3://bucket/code.zip"})
    with pytest.raises(ValueError, match="'conda' is not supported"):
        client.submit_job(entrypoint="true", runtime_env={"conda": "base"})


def test_a_working_dir_is_uploaded_and_the_entrypoint_starts_in_it(head, tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "helper.py").write_text("WORDS = 'imported from the working dir'\n")
    (tmp_path / "code" / "main.py").write_text("import os, helper\nprint(helper.WORDS, os.getcwd())\n")
    client = head.client()
    submission_id = client.submit_job(entrypoint=f"{sys.executable} main.py",
                                      runtime_env={"working_dir": str(tmp_path / "code")})
    info = ended(client, submission_id)
    assert info.status == JobStatus.SUCCEEDED, info
    assert info.runtime_env["working_dir"].startswith("pkg://")
    logs = client.get_job_logs(submission_id)
    extracted = info.runtime_env["working_dir"].removeprefix("pkg://").removesuffix(".zip")
    assert "imported from the working dir" in logs and f"/packages/{extracted}\n" in logs, logs


def request(head, method: str, path: str, token: str | None = None, body: dict | None = None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", head.port, timeout=30)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_the_jobs_api_needs_the_cluster_token(head):
    for method, path, body in [("GET", "/api/jobs/", None), ("POST", "/api/jobs/", {"entrypoint": "true"}),
                               ("GET", "/api/jobs/x/logs", None), ("POST", "/api/jobs/x/stop", None),
                               ("DELETE", "/api/jobs/x", None)]:
        for token in (None, "wrong-token"):
            status, answer = request(head, method, path, token, body)
            assert status == 401 and b"unauthorized" in answer, (method, path, status, answer)
    status, answer = request(head, "PUT", "/api/packages/" + "0" * 64 + ".zip", None, {})
    assert status == 401
    status, answer = request(head, "GET", "/api/jobs/", head.token)
    assert status == 200 and isinstance(json.loads(answer), list)
    status, answer = request(head, "GET", "/api/jobs/nothing-here", head.token)
    assert status == 404 and "nothing-here" in json.loads(answer)["error"]
    status, answer = request(head, "POST", "/api/jobs/", head.token,
                             {"entrypoint": "true", "runtime_env": {"working_dir": "/srv/code"}})
    assert status == 400 and "working_dir must be a package URI" in json.loads(answer)["error"], answer


def test_the_job_commands(head, tmp_path):
    cli = head.cluster.cli
    done = cli("job", "submit", "--submission-id", "cli-one", "--runtime-env-json", '{"env_vars": {"WHO": "cli"}}',
               "--", sys.executable, "-c", "import os; print('hello from', os.environ['WHO'])")
    assert "Job 'cli-one' submitted." in done.stdout and "hello from cli" in done.stdout, done.stdout
    assert "Job 'cli-one' succeeded" in done.stdout
    assert "SUCCEEDED" in cli("job", "status", "cli-one").stdout
    assert cli("job", "logs", "cli-one").stdout == "hello from cli\n"
    failed = cli("job", "submit", "--", "exit 4", check=False)
    assert failed.returncode == 1 and "failed" in failed.stdout and "code 4" in failed.stdout, failed.stdout
    infeasible = cli("job", "submit", "--entrypoint-num-cpus", "5", "--entrypoint-memory", "1e6", "--", "true",
                     check=False)
    assert infeasible.returncode == 1 and "never hold 5 CPU (the node has 2)" in infeasible.stdout, infeasible.stdout

    cli("job", "submit", "--no-wait", "--submission-id", "cli-sleeper", "--", "sleep 600")
    assert "cli-sleeper" in cli("job", "list").stdout
    stopped = cli("job", "stop", "cli-sleeper")
    assert "STOPPED" in stopped.stdout, stopped.stdout
    followed = cli("job", "logs", "--follow", "cli-one")  # an ended job: its log, then the end
    assert followed.stdout == "hello from cli\n"
    assert "deleted" in cli("job", "delete", "cli-one").stdout
    assert "cli-one" not in cli("job", "list").stdout
    duplicate = cli("job", "submit", "--submission-id", "cli-sleeper", "--", "true", check=False)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr, duplicate.stderr
    assert "cli-sleeper" in cli("list", "jobs").stdout
    with_url = cli("job", "status", "--address", head.url, "cli-sleeper")
    assert "STOPPED" in with_url.stdout


TICKER = textwrap.dedent("""
    import os, time
    print("pid", os.getpid(), flush=True)
    for tick in range(100000):
        print("tick", tick, flush=True)
        time.sleep(0.1)
""")


def stop_dashboard(head) -> None:
    """Stop the head's dashboard actor over the kernel, as a peer with the cluster's token (and
    TLS identity) may; its supervisor, the head's root, starts a new one on the same port."""
    from actorcore.cluster_files import cluster_at, credentials_at
    from actorcore.gcs.schema import key
    from actorcore.gcs.sealed import SealedEtcd
    from actorcore.kernel import ActorSystem, Terminated

    cluster, auth = cluster_at(head.cluster.address)
    credentials = credentials_at(head.cluster.address)

    async def stop() -> None:
        etcd = await SealedEtcd.connect(head.cluster.address.split(","), secret=head.token, timeout=5,
                                        **({"auth": auth} if auth else {}))
        try:
            nodes = [json.loads(value) for _, value in await etcd.get_prefix(key(cluster, "nodes", ""))]
        finally:
            await etcd.close()
        node_uri = next(node for node in nodes if node.get("head"))["uris"]["node"]
        dashboard_uri = node_uri.replace("/node?", "/dashboard?", 1)
        assert dashboard_uri != node_uri
        system = await ActorSystem.start(name="dashboard-stopper", token=head.token, uds=False,
                                         tcp="127.0.0.1:0", tls=credentials.tls if credentials else None)
        try:
            ended = await asyncio.wait_for(system.stop(system.ref_from_uri(dashboard_uri)), 20)
            assert isinstance(ended, Terminated), ended
        finally:
            await system.shutdown(timeout=5)

    asyncio.run(stop())


def test_a_running_job_and_its_log_outlive_a_restart_of_the_dashboard(head, tmp_path):
    script = tmp_path / "ticker.py"
    script.write_text(TICKER)
    client = head.client()
    submission_id = client.submit_job(entrypoint=f"exec {sys.executable} {script}")
    wait_until(lambda: "tick 3" in client.get_job_logs(submission_id), 60, "the job ticking")
    pid = int(client.get_job_logs(submission_id).split()[1])

    stop_dashboard(head)
    logs = wait_until(lambda: _answer(lambda: client.get_job_logs(submission_id)), 30,
                      "the restarted dashboard answering")
    assert client.get_job_status(submission_id) == JobStatus.RUNNING and is_alive(pid)
    last = int(logs.rsplit("tick ", 1)[1].split()[0])
    wait_until(lambda: f"tick {last + 5}" in client.get_job_logs(submission_id), 30, "the job still ticking")
    assert logs.startswith(f"pid {pid}\ntick 0\ntick 1\n")  # one entrypoint, never started again
    assert submission_id in {job.submission_id for job in client.list_jobs()}

    assert client.stop_job(submission_id) is True  # the new dashboard reaches the same job manager
    assert ended(client, submission_id, timeout=30).status == JobStatus.STOPPED
    assert not is_alive(pid)


def _answer(call):
    """What `call()` answers, or None while the dashboard does not (it is restarting)."""
    try:
        return call()
    except JobSubmissionError:
        return None
