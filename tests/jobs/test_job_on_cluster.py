"""A job on a real 3-node cluster: its working_dir, uploaded by the client, holds a module that
the job's tasks import on every node, and its env_vars reach them."""

from __future__ import annotations

import sys

import pytest

from actorcore.job_submission import JobStatus, JobSubmissionClient
from actorcore.testing import wait_until
from tests.multinode.conftest import _session, _start_cluster

pytestmark = pytest.mark.timeout(240)

MAIN = """
import actorcore as ray

ray.init()

@ray.remote
def where():
    import shipped
    return shipped.WORDS, ray.get_runtime_context().get_node_id()

results = ray.get([where.options(resources={name: 0.1}).remote() for name in ("A", "B", "C")])
print(sorted({words for words, _ in results}), len({node for _, node in results}), "nodes")
"""


def test_a_jobs_working_dir_is_imported_by_its_tasks_on_every_node(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "main.py").write_text(MAIN)
    (tmp_path / "code" / "shipped.py").write_text("import os\n\nWORDS = 'shipped ' + os.environ['TAG']\n")
    with _session(_start_cluster()):
        client = JobSubmissionClient()
        submission_id = client.submit_job(entrypoint=f"{sys.executable} main.py",
                                          runtime_env={"working_dir": str(tmp_path / "code"),
                                                       "env_vars": {"TAG": "with the job"}})
        wait_until(lambda: client.get_job_status(submission_id).is_terminal(), 180, "the job to end",
                   details=lambda: client.get_job_logs(submission_id))
        logs = client.get_job_logs(submission_id)
        assert client.get_job_status(submission_id) == JobStatus.SUCCEEDED, logs
        assert "['shipped with the job'] 3 nodes" in logs, logs
