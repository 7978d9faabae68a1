"""The manifests' own commands, run as their pods would run them, on loopback: each "pod" is an
ACTORCORE_HOME and a TMPDIR of its own and an IP of its own (127.0.0.2 for the head,
127.0.0.3 for a worker, as pods' IPs that the credentials never named). The credentials come as
a Kubernetes Secret's file does (group-readable), the init container's command copies them,
the node runs as the image's entry point runs it (`actorcore start --block` and the manifest's
args), the probes' commands say when it is up, and the preStop command and SIGTERM end it
with nothing left. Only what a cluster gives a pod is put in: the Service's name becomes the
head's IP, the ports become free ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actorcore.credentials import make_credentials
from actorcore.gcs.etcd_server import _free_port
from actorcore.objects import list_segments
from actorcore.testing import processes_of, wait_until

pytestmark = pytest.mark.timeout(240)

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


class Pod:
    """One pod's node container, run here: its env, its files, its `start --block` process."""

    def __init__(self, deployment: dict, directory: Path, pod_ip: str, replacements: dict[str, str]):
        spec = deployment["spec"]["template"]["spec"]
        (self.container,) = spec["containers"]
        self.init_containers = spec["initContainers"]
        self.directory = directory
        self.home = directory / "home"
        tmp = directory / "tmp"
        tmp.mkdir(parents=True)
        self.env = {**os.environ, "TMPDIR": str(tmp), "ACTORCORE_HOME": str(self.home)}
        self.replacements = {"$(POD_IP)": pod_ip, **replacements}
        self.process: subprocess.Popen | None = None
        self.log = directory / "output.log"

    def path(self, path: str) -> str:
        """A path of the pod, in its directory here."""
        return str(self.directory / path.lstrip("/"))

    def run_init_container(self, name: str) -> None:
        (container,) = [c for c in self.init_containers if c["name"] == name]
        argv = [{"python": sys.executable}.get(a, self.replacements.get(a, a)) for a in container["command"]]
        argv = [self.path(a) if a.startswith("/") and a != sys.executable else a for a in argv]
        for mount in container.get("volumeMounts", []):  # the pod's volumes
            os.makedirs(self.path(mount["mountPath"]), exist_ok=True)
        subprocess.run(argv, check=True, timeout=30, env=self.env)

    def args(self) -> list[str]:
        args = [self.replacements.get(a, a) for a in self.container["args"]]
        return [self.path(a) if a.startswith("/etc/") else a for a in args]

    def start(self) -> None:
        # the image's ENTRYPOINT is `tini -- actorcore start --block`, the manifest gives the args
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "actorcore", "start", "--block", *self.args()],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def exec(self, command: list[str]) -> subprocess.CompletedProcess:
        """A probe's or a hook's command, in the container."""
        assert command[0] == "actorcore"
        return subprocess.run([sys.executable, "-m", "actorcore", *command[1:]], env=self.env, capture_output=True,
                              text=True, timeout=30, check=False)

    def probe(self, name: str) -> bool:
        return self.exec(self.container[name]["exec"]["command"]).returncode == 0

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(not started)"

    def kill(self) -> None:
        """End whatever of the pod still runs, removing what its node leaves (its shared memory)."""
        subprocess.run([sys.executable, "-m", "actorcore", "stop", "--force"], env=self.env, capture_output=True,
                       timeout=60, check=False)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in processes_of(self.home):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def pods(render, tmp_path):
    head_deployment, worker_deployment = render.render(workers=1)[1:]
    etcd_port = str(_free_port())
    shared = {"6380": etcd_port, "0.0.0.0": HEAD_IP}
    head = Pod(head_deployment, tmp_path / "head", HEAD_IP,
               {**shared, "8265": str(_free_port()), "8080": str(_free_port())})
    worker = Pod(worker_deployment, tmp_path / "worker", WORKER_IP,
                 {**shared, "actorcore-head:6380": f"{HEAD_IP}:{etcd_port}", "actorcore-head": HEAD_IP,
                  "8080": str(_free_port())})
    try:
        yield head, worker
    finally:
        worker.kill()
        head.kill()


def _secret_file(pod: Pod, credentials_json: str) -> None:
    """The Secret's file as the kubelet writes it with an fsGroup: readable by the group."""
    path = Path(pod.path("/var/run/actorcore-secret/credentials.json"))
    path.parent.mkdir(parents=True)
    path.write_text(credentials_json)
    path.chmod(0o440)


def test_a_head_and_a_worker_run_as_their_manifests_say(pods, tmp_path):
    head, worker = pods
    secret = make_credentials("default", "actorcore-head:6380", os.urandom(16).hex(), hosts=["actorcore-head"])
    for pod in (head, worker):
        _secret_file(pod, secret.to_json())
        pod.run_init_container("credentials")
        assert oct(Path(pod.path("/etc/actorcore/credentials.json")).stat().st_mode & 0o777) == "0o600"

    head.start()
    wait_until(lambda: head.probe("readinessProbe"), 90, "the head to be ready", details=head.output)
    assert head.probe("livenessProbe")
    worker.run_init_container("wait-for-head")  # returns at once: the head's etcd answers
    worker.start()
    wait_until(lambda: worker.probe("readinessProbe"), 90, "the worker to be ready", details=worker.output)

    status = head.exec(["actorcore", "status"])
    assert status.returncode == 0 and "Nodes: 2 alive" in status.stdout, status.stdout + status.stderr
    assert HEAD_IP in status.stdout and WORKER_IP in status.stdout

    # The worker's pod ends: its preStop hook, then SIGTERM to the entry point.
    records = [p.read_text() for pod in (head, worker) for p in (pod.home / "nodes").iterdir()]
    assert worker.exec(worker.container["lifecycle"]["preStop"]["exec"]["command"]).returncode == 0
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(30) == 0, worker.output()
    assert not worker.probe("livenessProbe")
    # The head's pod ends with SIGTERM alone (no preStop hook ran, e.g. a node drained by force).
    head.process.send_signal(signal.SIGTERM)
    assert head.process.wait(30) == 0, head.output()
    for pod in (worker, head):
        wait_until(lambda pod=pod: not processes_of(pod.home), 30, "the pod's processes to end",
                   details=lambda pod=pod: processes_of(pod.home))
    for record in records:
        assert list_segments(json.loads(record)["node_id"]) == []
