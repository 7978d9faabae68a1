"""`actorcore.credentials`: made at `start --head`, one private file, a CA of the cluster's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from actorcore.cluster_files import write_credentials
from actorcore.credentials import TLS_SERVER_NAME, Credentials, CredentialsError, make_credentials

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def credentials():
    return make_credentials("default", "10.1.2.3:6380", "the-secret", hosts=["10.1.2.3", "head.example"])


def test_the_certificate_is_signed_by_the_cluster_ca_and_names_the_cluster(credentials):
    ca = x509.load_pem_x509_certificate(credentials.ca.encode())
    cert = x509.load_pem_x509_certificate(credentials.cert.encode())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert TLS_SERVER_NAME in names.get_values_for_type(x509.DNSName)
    assert "head.example" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.1.2.3"}
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    other = x509.load_pem_x509_certificate(make_credentials("default", "x:1", "s").ca.encode())
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(other)


def test_saved_private_and_loaded_back(credentials, tmp_path):
    path = write_credentials(credentials, tmp_path / "credentials.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert Credentials.load(path) == credentials
    assert "the-secret" not in repr(credentials) and "PRIVATE" not in repr(credentials)


def test_a_file_others_can_read_is_refused(credentials, tmp_path):
    path = write_credentials(credentials, tmp_path / "credentials.json")
    os.chmod(path, 0o644)
    with pytest.raises(CredentialsError, match=r"can be read by others.*chmod 600"):
        Credentials.load(path)


def test_a_symlink_is_not_followed(credentials, tmp_path):
    target = write_credentials(credentials, tmp_path / "real.json")
    (tmp_path / "link.json").symlink_to(target)
    with pytest.raises(CredentialsError, match="cannot open"):
        Credentials.load(tmp_path / "link.json")


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not JSON"),
    ('{"version": 7}', "not a version-1"),
    ('{"version": 1, "cluster": "c", "address": "a", "token": ""}', "lacks token, ca, cert, key"),
])
def test_what_is_not_credentials_is_named(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(CredentialsError, match=message):
        Credentials.load(path)
    with pytest.raises(CredentialsError, match="no credentials file"):
        Credentials.load(tmp_path / "missing.json")


def test_pem_files_for_etcd_are_private(credentials, tmp_path):
    files = credentials.tls_files(tmp_path / "tls")
    assert set(files) == {"ca", "cert", "key"}
    for path in files.values():
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert Path(files["key"]).read_text() == credentials.key
