"""Runtime env packages are collected when nothing uses them, on a real 2-node cluster (a head with
its dashboard and job manager, and node "B") whose collector keeps packages for a grace period
of `GRACE` seconds and makes a pass every half second: a driver's package lives as long as the
driver, a running job's as long as the job, a detached actor's as long as the actor; a package
just uploaded is kept for the grace period; the nodes' extracted copies go with the package.
The collector's settings are read from the environment, a bad one refused with its name."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import actorcore as ray
from actorcore.gcs import SealedEtcd, schema
from actorcore.job_submission import JobStatus, JobSubmissionClient
from actorcore.runtime_env.package_store import PackageStore
from actorcore.runtime_env.packaging import pack, sha_of_uri
from actorcore.testing import wait_until
from tests.multinode.conftest import LEASE_TTL, _session, unstarted_cluster

pytestmark = pytest.mark.timeout(180)

GRACE = 2.0  # seconds (the cluster's ACTORCORE_PACKAGE_GRACE_S)
WAIT = 60.0  # the bound of every wait for the cluster to act


class ClusterEtcd:
    """The cluster's etcd, read from the test's thread (a loop of its own in a thread)."""

    def __init__(self, endpoint: str, token: str, auth: dict | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.etcd = self.run(SealedEtcd.connect(endpoint, secret=token, auth=auth))
        self.store = PackageStore(self.etcd, schema.DEFAULT_CLUSTER)

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def has_package(self, uri: str) -> bool:
        return self.run(self.store.exists(uri))

    def refs(self, uri: str) -> list[str]:
        return self.run(self.etcd.get_prefix_keys(schema.key(schema.DEFAULT_CLUSTER, "package_refs",
                                                               sha_of_uri(uri), "")))

    def close(self) -> None:
        self.run(self.etcd.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Gc:
    def __init__(self, cluster, etcd: ClusterEtcd, tmp: Path) -> None:
        self.cluster, self.etcd, self.tmp = cluster, etcd, tmp

    def extracted(self, uri: str) -> list[Path]:
        """The nodes' extracted copies of package `uri`."""
        return list(self.tmp.glob(f"actorcore-runtime-envs-*/packages/{sha_of_uri(uri)}"))

    def driver(self, code: str, runtime_env: dict | None = None) -> subprocess.Popen:
        """A driver process running `code` after init(); it prints "ready" and waits for its stdin to close."""
        init = f"ray.init(address={self.cluster.address!r}, namespace='package-gc', runtime_env={runtime_env!r})"
        program = (f"import sys\nimport actorcore as ray\n{init}\n{code}\n"
                   "print('ready', flush=True)\nsys.stdin.read()\n")
        return subprocess.Popen([sys.executable, "-c", program], env=self.cluster.env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def kept_past_grace(self, uri: str) -> None:
        """Package `uri` is still there more than a grace period (and a few passes) from now."""
        end = time.monotonic() + GRACE + 1.5
        while time.monotonic() < end:
            assert self.etcd.has_package(uri), f"package {uri} was collected while in use"
            time.sleep(0.2)

    def collected(self, uri: str) -> None:
        wait_until(lambda: not self.etcd.has_package(uri), WAIT, f"package {uri} to be collected")
        wait_until(lambda: not self.extracted(uri), WAIT, "the nodes' extracted copies to be removed",
                   details=lambda: self.extracted(uri))


@pytest.fixture(scope="module")
def gc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node-tmp")
    cluster = unstarted_cluster("actorcore-package-gc-")
    cluster.lease_ttl = LEASE_TTL
    cluster.env.update(ACTORCORE_PACKAGE_GRACE_S=str(GRACE), ACTORCORE_PACKAGE_GC_INTERVAL_S="0.5", TMPDIR=str(tmp))
    with _session(cluster):
        cluster.start_node("A", head=True)
        cluster.start_node("B")
        etcd = ClusterEtcd(cluster.address, (cluster.home / "token").read_text().strip(),
                           json.loads((cluster.home / "cluster.json").read_text()).get("etcd_auth"))
        try:
            yield Gc(cluster, etcd, tmp)
        finally:
            etcd.close()
    assert not list(tmp.glob("actorcore-runtime-envs-*")), "a node left its runtime env folder behind"


def _app(root: Path, name: str) -> tuple[Path, str]:
    """A working_dir of its own content, and its package URI."""
    folder = root / name
    folder.mkdir()
    (folder / "shipped.py").write_text(f"NAME = {name!r}\n")
    return folder, pack(folder)[0]


def _ended(process: subprocess.Popen) -> None:
    process.stdin.close()
    assert process.wait(60) == 0, process.stderr.read()


def test_a_drivers_package_is_kept_while_the_driver_runs_and_collected_after(gc, tmp_path):
    app, uri = _app(tmp_path, "driver_app")
    driver = gc.driver("@ray.remote(resources={'B': 0.1})\ndef name():\n    import shipped\n    return shipped.NAME\n"
                       "assert ray.get(name.remote()) == 'driver_app'", runtime_env={"working_dir": str(app)})
    try:
        assert driver.stdout.readline().strip() == "ready", driver.stderr.read()
        assert gc.etcd.refs(uri), "the driver's node holds no reference to its package"
        assert gc.extracted(uri), "node B did not extract the package"
        gc.kept_past_grace(uri)
    finally:
        _ended(driver)
    gc.collected(uri)
    assert not gc.etcd.refs(uri)


def test_a_running_jobs_package_is_kept_and_collected_once_it_ended(gc, tmp_path):
    app, uri = _app(tmp_path, "job_app")
    go = tmp_path / "go"
    entrypoint = (f"{sys.executable} -c \"import os, time, shipped\nprint('cwd', os.getcwd(), flush=True)\n"
                  f"while not os.path.exists({str(go)!r}): time.sleep(0.1)\"")
    client = JobSubmissionClient()
    submission_id = client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": str(app)})
    wait_until(lambda: client.get_job_status(submission_id) == JobStatus.RUNNING, WAIT, "the job to run",
               details=lambda: (client.get_job_info(submission_id), client.get_job_logs(submission_id)))
    logs = wait_until(lambda: "cwd " in client.get_job_logs(submission_id) and client.get_job_logs(submission_id),
                      WAIT, "the job to say where it runs")
    job_copy = Path(logs.split("cwd ", 1)[1].split("\n", 1)[0])  # the head pool's copy, the entrypoint's folder
    assert job_copy.is_dir() and sha_of_uri(uri) in str(job_copy)
    gc.kept_past_grace(uri)
    go.touch()
    wait_until(lambda: client.get_job_status(submission_id).is_terminal(), WAIT, "the job to end")
    assert client.get_job_status(submission_id) == JobStatus.SUCCEEDED, client.get_job_logs(submission_id)
    gc.collected(uri)
    wait_until(lambda: not job_copy.exists(), WAIT, "the head's copy to be removed")


def test_a_detached_actors_package_outlives_its_driver_until_the_actor_is_killed(gc, tmp_path):
    app, _ = _app(tmp_path, "actor_app")
    uri = pack(app, what="py_modules", top_level=True)[0]
    creator = gc.driver(
        "@ray.remote(resources={'B': 0.1})\nclass Keeper:\n    def name(self):\n        from actor_app import shipped\n"
        "        return shipped.NAME\n"
        f"keeper = Keeper.options(name='keeper', lifetime='detached', runtime_env={{'py_modules': [{str(app)!r}]}})"
        ".remote()\nassert ray.get(keeper.name.remote()) == 'actor_app'")
    try:
        assert creator.stdout.readline().strip() == "ready", creator.stderr.read()
    finally:
        _ended(creator)
    wait_until(lambda: not gc.etcd.refs(uri), WAIT, "the creator's reference to go with it")
    gc.kept_past_grace(uri)
    assert gc.extracted(uri)
    # Killed from this process, which outlives the kill (a driver that exits at once may end
    # before its ExitWorker reaches the actor's worker: see the report of this change).
    ray.init(address=gc.cluster.address, namespace="package-gc")
    try:
        ray.kill(ray.get_actor("keeper"))
        gc.collected(uri)
    finally:
        ray.shutdown()


def test_an_uploaded_package_is_kept_for_the_grace_period(gc, tmp_path):
    _, uri = _app(tmp_path, "uploaded_app")
    data = pack(tmp_path / "uploaded_app")[1]
    uploaded = time.time()
    assert gc.etcd.run(gc.etcd.store.put(uri, data))
    while time.time() < uploaded + GRACE * 0.75:
        assert gc.etcd.has_package(uri), "a package was collected within its grace period"
        time.sleep(0.1)
    wait_until(lambda: not gc.etcd.has_package(uri), WAIT, "the unused package to be collected")
    assert time.time() >= uploaded + GRACE


def test_the_collectors_settings_come_from_the_environment_and_bad_ones_are_named(monkeypatch):
    from actorcore.node.package_collector import DEFAULT_GC_INTERVAL, DEFAULT_GRACE, gc_settings

    monkeypatch.delenv("ACTORCORE_PACKAGE_GRACE_S", raising=False)
    monkeypatch.delenv("ACTORCORE_PACKAGE_GC_INTERVAL_S", raising=False)
    assert gc_settings() == (DEFAULT_GRACE, DEFAULT_GC_INTERVAL) == (600.0, 60.0)
    monkeypatch.setenv("ACTORCORE_PACKAGE_GRACE_S", "0")
    monkeypatch.setenv("ACTORCORE_PACKAGE_GC_INTERVAL_S", "2.5")
    assert gc_settings() == (0.0, 2.5)
    monkeypatch.setenv("ACTORCORE_PACKAGE_GRACE_S", "ten")
    with pytest.raises(ValueError, match="ACTORCORE_PACKAGE_GRACE_S='ten' is not a number of seconds"):
        gc_settings()
    monkeypatch.setenv("ACTORCORE_PACKAGE_GRACE_S", "-1")
    with pytest.raises(ValueError, match="ACTORCORE_PACKAGE_GRACE_S='-1' must be at least 0 seconds"):
        gc_settings()
    monkeypatch.setenv("ACTORCORE_PACKAGE_GRACE_S", "1")
    monkeypatch.setenv("ACTORCORE_PACKAGE_GC_INTERVAL_S", "0")
    with pytest.raises(ValueError, match="ACTORCORE_PACKAGE_GC_INTERVAL_S='0' must be above 0 seconds"):
        gc_settings()
