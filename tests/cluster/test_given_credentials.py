"""A cluster whose credentials exist before its nodes, as on Kubernetes (a Secret): `actorcore
credentials new`, `start --head --credentials`, a node joined with the same file, `health`.

The head binds 127.0.0.2, an address its certificate does not name (as a pod's IP, unknown when
the credentials were made): its etcd, its kernel and its object store are reached there all the
same, since the cluster's clients check the cluster's name in the certificate, not the address.
The joined node has an ACTORCORE_HOME of its own, as a node on another machine."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from actorcore import cluster_files as files
from actorcore.credentials import TLS_SERVER_NAME, Credentials
from actorcore.gcs import EtcdClient
from actorcore.gcs.etcd_client import EtcdUnavailableError
from actorcore.gcs.etcd_server import _free_port
from actorcore.testing import processes_of, wait_until

pytestmark = pytest.mark.timeout(180)

HEAD_IP = "127.0.0.2"


def _cli(*args: str, home=None, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ) if home is None else {**os.environ, files.HOME_ENV: str(home)}
    return subprocess.run([sys.executable, "-m", "actorcore", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


@pytest.fixture
def homes(actorcore_home, tmp_path):
    """The head's ACTORCORE_HOME (this test's) and the joined node's; nothing of either is left."""
    worker_home = tmp_path / "worker-home"
    try:
        yield actorcore_home, worker_home
    finally:
        for home in (worker_home, actorcore_home):  # the worker first: the head runs the etcd
            _cli("stop", "--force", home=home)
            for pid in processes_of(home):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_credentials_new_prints_or_writes_a_private_file_it_never_replaces(tmp_path):
    printed = _cli("credentials", "new", "--address", "actorcore-head:6380")
    assert printed.returncode == 0, printed.stderr
    credentials = Credentials.from_json(printed.stdout)
    assert credentials.address == "actorcore-head:6380" and credentials.cluster == "default"
    assert credentials.etcd_tls and len(credentials.token) == 32

    out = tmp_path / "credentials.json"
    result = _cli("credentials", "new", "--address", "actorcore-head:6380", "--out", str(out),
                  "--host", "actorcore-head.default.svc.cluster.local", "--external-etcd")
    assert result.returncode == 0, result.stderr
    assert f"actorcore start --head --credentials {out}" in result.stdout
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    written = Credentials.load(out)
    assert written.token != credentials.token and written.etcd_tls is False
    from cryptography import x509

    names = x509.load_pem_x509_certificate(written.cert.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == [TLS_SERVER_NAME, "actorcore-head", "actorcore-head.default.svc.cluster.local"]

    again = _cli("credentials", "new", "--address", "actorcore-head:6380", "--out", str(out))
    assert again.returncode == 1 and f"{out} exists" in again.stderr
    assert Credentials.load(out).token == written.token
    bad = _cli("credentials", "new", "--address", "actorcore-head")
    assert bad.returncode == 2 and "argument --address" in bad.stderr


def test_a_head_refuses_credentials_made_for_another_kind_of_etcd(actorcore_home, tmp_path):
    own_etcd, external = tmp_path / "own.json", tmp_path / "external.json"
    _cli("credentials", "new", "--address", "h:6380", "--out", str(own_etcd))
    _cli("credentials", "new", "--address", "h:6380", "--out", str(external), "--external-etcd")
    result = _cli("start", "--head", "--etcd", "127.0.0.1:1", "--credentials", str(own_etcd))
    assert result.returncode == 1 and "without --etcd" in result.stderr
    result = _cli("start", "--head", "--credentials", str(external))
    assert result.returncode == 1 and "pass it with --etcd" in result.stderr
    result = _cli("start", "--head", "--token-file", str(own_etcd))
    assert result.returncode == 2 and "argument --token-file" in result.stderr
    assert files.node_files() == []


def test_a_head_and_a_node_started_with_made_credentials_work_at_addresses_not_in_the_certificate(homes, tmp_path):
    head_home, worker_home = homes
    port = _free_port()
    secret = tmp_path / "credentials.json"  # made for the name of a Service, not for the head's IP
    assert _cli("credentials", "new", "--address", f"actorcore-head:{port}", "--out", str(secret)).returncode == 0
    made = Credentials.load(secret)

    result = _cli("start", "--head", "--node-ip-address", HEAD_IP, "--port", str(port), "--credentials", str(secret),
                  "--num-cpus", "1", "--resources", '{"head": 1}', "--object-store-memory", "50000000",
                  "--no-include-dashboard", home=head_home)
    assert result.returncode == 0, result.stdout + result.stderr
    address = f"{HEAD_IP}:{port}"
    on_head = Credentials.load(files.credentials_path())  # kept with the address this machine uses
    assert (on_head.token, on_head.cert, on_head.address) == (made.token, made.cert, address)
    assert files.read_token() == made.token

    result = _cli("start", "--address", address, "--credentials", str(secret), "--num-cpus", "1",
                  "--resources", '{"worker": 1}', "--object-store-memory", "50000000", home=worker_home)
    assert result.returncode == 0, result.stdout + result.stderr
    for home in (head_home, worker_home):
        health = _cli("health", home=home)
        assert health.returncode == 0 and "1 node(s) running and registered" in health.stdout, health.stderr

    async def connect(auth: dict) -> None:
        client = await EtcdClient.connect(address, auth=auth, timeout=3, retry_deadline=3)
        await client.close()

    tls_dir = tmp_path / "tls"
    asyncio.run(connect(made.etcd_auth(tls_dir)))
    with pytest.raises(EtcdUnavailableError):  # checking the address dialed: the certificate does not name it
        asyncio.run(connect(made.tls_files(tls_dir)))

    # A task on each node and an object passed between them: the kernel's and the object
    # store's TLS between the head's address and the node's.
    driver = f"""
import json, actorcore
actorcore.init(address={address!r})
@actorcore.remote
def where(data):
    return actorcore.get_runtime_context().get_node_id(), len(data)
data = actorcore.put(b"x" * 2_000_000)
print(json.dumps([actorcore.get(where.options(resources={{name: 1}}).remote(data)) for name in ("head", "worker")]))
actorcore.shutdown()
"""
    ran = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=90, check=False,
                         env={**os.environ, files.HOME_ENV: str(head_home)})
    assert ran.returncode == 0, ran.stderr[-3000:]
    (head_node, size), (worker_node, _) = json.loads(ran.stdout.splitlines()[-1])
    assert head_node != worker_node and size == 2_000_000

    assert _cli("stop", home=worker_home).returncode == 0
    stopped = _cli("health", "--live", home=worker_home)
    assert stopped.returncode == 1 and "no node was started" in stopped.stderr
    assert _cli("stop", home=head_home).returncode == 0
    for home in (worker_home, head_home):
        wait_until(lambda home=home: not processes_of(home), 30, "the cluster's processes to end",
                   details=lambda home=home: processes_of(home))
