"""An etcd run with the cluster's credentials: TLS only, and a client certificate of the
cluster's CA required; anonymous and foreign clients are refused."""

from __future__ import annotations

import pytest

from actorcore.credentials import make_credentials
from actorcore.gcs.etcd_client import EtcdAuthError, EtcdClient, EtcdUnavailableError
from actorcore.gcs.etcd_server import EtcdServer

from .conftest import stop_and_check

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def credentials():
    return make_credentials("default", "127.0.0.1:0", "a-secret")


@pytest.fixture
def tls_etcd(credentials, tmp_path):
    server = EtcdServer(tls=credentials.tls_files(tmp_path / "tls")).start()
    try:
        yield server
    finally:
        stop_and_check(server)


async def test_a_member_reads_and_writes(tls_etcd, credentials, tmp_path):
    assert tls_etcd.client_url.startswith("https://")
    client = await EtcdClient.connect(tls_etcd.endpoint, auth=credentials.tls_files(tmp_path / "client"))
    try:
        await client.put("k", b"v")
        assert await client.get("k") == b"v"
    finally:
        await client.close()


async def test_an_anonymous_client_is_refused(tls_etcd):
    with pytest.raises((EtcdUnavailableError, EtcdAuthError)):
        await EtcdClient.connect(tls_etcd.endpoint, timeout=2, retry_deadline=2)


async def test_tls_without_a_client_certificate_is_refused(tls_etcd, credentials, tmp_path):
    ca_only = {"ca": credentials.tls_files(tmp_path / "client")["ca"]}
    with pytest.raises((EtcdUnavailableError, EtcdAuthError)):
        await EtcdClient.connect(tls_etcd.endpoint, auth=ca_only, timeout=2, retry_deadline=2)


async def test_another_clusters_certificate_is_refused(tls_etcd, credentials, tmp_path):
    other = make_credentials("default", "127.0.0.1:0", "another-secret")
    foreign = {**other.tls_files(tmp_path / "other"), "ca": credentials.tls_files(tmp_path / "client")["ca"]}
    with pytest.raises((EtcdUnavailableError, EtcdAuthError)):
        await EtcdClient.connect(tls_etcd.endpoint, auth=foreign, timeout=2, retry_deadline=2)


async def test_a_member_checks_the_clusters_name_whatever_address_it_dials(tls_etcd, credentials, tmp_path):
    # The certificate names the cluster and 127.0.0.1, not "localhost" (as it names no pod's IP).
    endpoint = tls_etcd.endpoint.replace("127.0.0.1", "localhost")
    with pytest.raises(EtcdUnavailableError):
        await EtcdClient.connect(endpoint, auth=credentials.tls_files(tmp_path / "client"), timeout=2,
                                 retry_deadline=2)
    client = await EtcdClient.connect(endpoint, auth=credentials.etcd_auth(tmp_path / "client"))
    try:
        await client.put("k", b"v")
    finally:
        await client.close()
    with pytest.raises(ValueError, match=r"server_name .* needs the CA"):
        EtcdClient(endpoint, auth={"server_name": "actorcore-cluster"})


def test_tls_needs_all_three_files(tmp_path):
    with pytest.raises(ValueError, match="ca, cert and key"):
        EtcdServer(tls={"ca": str(tmp_path / "ca.pem")})
