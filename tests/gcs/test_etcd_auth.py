"""EtcdClient's credentials against a real etcd: user and password (etcd's simple-token
authentication, enabled with etcd's own Auth API), and TLS with certificates made by the
openssl command line for the test."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest
from aetcd import rpc

from actorcore.gcs import EtcdServer, find_etcd_binary
from actorcore.gcs.etcd_client import EtcdAuthError, EtcdClient, EtcdUnavailableError
from actorcore.gcs.etcd_server import _free_port
from actorcore.testing import is_alive

from .conftest import stop_and_check

pytestmark = pytest.mark.timeout(60)

ROOT = {"user": "root", "password": "root-secret"}
ALICE = {"user": "alice", "password": "alice-secret"}  # may read and write /actorcore/ only


async def _enable_auth(endpoint: str) -> None:
    """root (role root) and alice (read-write on /actorcore/), then auth on."""
    async with grpc.aio.insecure_channel(endpoint) as channel:
        auth = rpc.AuthStub(channel)
        await auth.UserAdd(rpc.AuthUserAddRequest(name="root", password=ROOT["password"]))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"))
        await auth.RoleAdd(rpc.AuthRoleAddRequest(name="actorcore"))
        await auth.RoleGrantPermission(rpc.AuthRoleGrantPermissionRequest(
            name="actorcore", perm=rpc.Permission(permType=rpc.Permission.READWRITE, key=b"/actorcore/",
                                                  range_end=b"/actorcore0")))
        await auth.UserAdd(rpc.AuthUserAddRequest(name="alice", password=ALICE["password"]))
        await auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="alice", role="actorcore"))
        await auth.AuthEnable(rpc.AuthEnableRequest())


@pytest.fixture
async def auth_etcd():
    server = EtcdServer().start()
    try:
        await _enable_auth(server.endpoint)
        yield server
    finally:
        stop_and_check(server)


async def test_right_credentials_work(auth_etcd):
    async with await EtcdClient.connect(auth_etcd.endpoint, auth=ROOT) as client:
        await client.put("/anywhere", b"1")
        assert await client.get("/anywhere") == b"1"
        lease = await client.lease(5)
        await client.put("/actorcore/default/nodes/n1", b"{}", lease=lease)
        watch = await client.watch_prefix("/actorcore/").start()
        await client.put("/actorcore/default/x", b"2")
        event = await watch.__anext__()
        assert (event.type, event.key, event.value) == ("put", "/actorcore/default/x", b"2")
        await watch.aclose()
        await lease.revoke()
        assert await client.get("/actorcore/default/nodes/n1") is None


async def test_wrong_password_is_a_clear_error_at_once(auth_etcd):
    with pytest.raises(EtcdAuthError) as raised:
        await EtcdClient.connect(auth_etcd.endpoint, auth={"user": "root", "password": "wrong"}, timeout=20)
    message = str(raised.value)
    assert auth_etcd.endpoint in message and "'root'" in message
    assert "invalid user ID or password" in message and "--etcd-password" in message


async def test_missing_credentials_name_the_flags(auth_etcd):
    with pytest.raises(EtcdAuthError, match=r"requires authentication.*--etcd-user"):
        await EtcdClient.connect(auth_etcd.endpoint, timeout=20)


async def test_a_user_limited_to_the_prefix_connects_and_is_told_what_it_may_not_do(auth_etcd):
    async with await EtcdClient.connect(auth_etcd.endpoint, auth=ALICE) as client:
        await client.put("/actorcore/default/config", b"{}")
        assert await client.get_prefix("/actorcore/") == [("/actorcore/default/config", b"{}")]
        with pytest.raises(EtcdAuthError, match=r"denies user 'alice'.*grant-permission"):
            await client.put("/elsewhere", b"1")


async def test_a_restarted_etcd_forgets_tokens_and_the_client_authenticates_again(auth_etcd):
    async with await EtcdClient.connect(auth_etcd.endpoint, auth=ALICE) as client:
        await client.put("/actorcore/a", b"1")
        auth_etcd.restart()
        assert await client.get("/actorcore/a") == b"1"
        await client.put("/actorcore/b", b"2")
        watch = await client.watch_prefix("/actorcore/").start()
        await watch.aclose()


def test_credentials_are_checked_when_made():
    with pytest.raises(ValueError, match="both a user and a password"):
        EtcdClient("127.0.0.1:2379", auth={"user": "root"})
    with pytest.raises(ValueError, match="both a certificate and its key"):
        EtcdClient("127.0.0.1:2379", auth={"cert": "/nonexistent.pem"})
    with pytest.raises(ValueError, match="unknown etcd auth key"):
        EtcdClient("127.0.0.1:2379", auth={"username": "root"})
    with pytest.raises(FileNotFoundError, match=r"etcd TLS ca file '/nonexistent/ca\.pem'"):
        EtcdClient("127.0.0.1:2379", auth={"ca": "/nonexistent/ca.pem"})


# -- TLS ------------------------------------------------------------------------------------


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_certs(directory) -> dict:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, signed by the CA."""
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *new_key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=actorcore test CA", cwd=directory)
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        (directory / f"{name}.ext").write_text(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
        _openssl("req", *new_key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=directory)
    return {name: str(directory / name) for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


@pytest.fixture
def tls_etcd(tmp_path):
    """etcd serving TLS only, requiring client certificates signed by the test CA."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command line is needed to make this test's certificates")
    certs = _make_certs(tmp_path)
    port, peer = _free_port(), _free_port()
    process = subprocess.Popen([
        find_etcd_binary(), "--name=tls", f"--data-dir={tmp_path / 'data'}",
        f"--listen-client-urls=https://127.0.0.1:{port}", f"--advertise-client-urls=https://127.0.0.1:{port}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=tls=http://127.0.0.1:{peer}", "--heartbeat-interval=10", "--election-timeout=50",
        f"--cert-file={certs['server.pem']}", f"--key-file={certs['server.key']}",
        f"--trusted-ca-file={certs['ca.pem']}", "--client-cert-auth", "--unsafe-no-fsync", "--log-level=error",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield f"127.0.0.1:{port}", certs
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        assert not is_alive(process.pid)


async def test_tls_with_a_client_certificate(tls_etcd):
    endpoint, certs = tls_etcd
    auth = {"ca": certs["ca.pem"], "cert": certs["client.pem"], "key": certs["client.key"]}
    # The bounded wait for etcd to come up is the connect timeout.
    async with await EtcdClient.connect(endpoint, auth=auth, timeout=15) as client:
        assert client.tls
        await client.put("/actorcore/tls", b"1")
        assert await client.get("/actorcore/tls") == b"1"
        watch = await client.watch_prefix("/actorcore/").start()
        await watch.aclose()


async def test_tls_etcd_refuses_plain_text_and_unknown_clients(tls_etcd):
    endpoint, certs = tls_etcd
    async with await EtcdClient.connect(endpoint, auth={"ca": certs["ca.pem"], "cert": certs["client.pem"],
                                                        "key": certs["client.key"]}, timeout=15):
        pass  # etcd is up
    with pytest.raises(EtcdUnavailableError):
        await EtcdClient.connect(endpoint, timeout=1)
    # The server's certificate checks out, but without a client certificate etcd refuses.
    with pytest.raises(EtcdUnavailableError):
        await EtcdClient.connect(endpoint, auth={"ca": certs["ca.pem"]}, timeout=1)
