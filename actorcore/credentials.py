"""A cluster's credentials: its secret, a certificate authority of its own, and the one
certificate its processes present to each other (docs/architecture.md, "Security model").

``actorcore start --head`` makes them (`make_credentials`) and writes them to one file, mode
0600 (`cluster_files.write_credentials`), which is all a joining node or a remote driver
needs, as a Kubernetes kubeconfig is. ``actorcore credentials new`` makes them before any node
exists (for a Kubernetes Secret), and ``start --head --credentials FILE`` starts the head of
that cluster:

```json
{"version": 1, "cluster": "default", "address": "10.0.0.1:6380", "token": "...",
 "ca": "-----BEGIN CERTIFICATE-----...", "cert": "-----BEGIN CERTIFICATE-----...",
 "key": "-----BEGIN PRIVATE KEY-----..."}
```

- ``token`` is the cluster secret: the key of every MAC that proves membership (the
  handshake between actor systems, a gRPC call, a record in etcd). It never crosses a socket.
- ``ca`` is the cluster's own certificate authority (an ECDSA P-256 key made for this cluster
  and thrown away once it has signed ``cert``: no other certificate can ever be made).
- ``cert``/``key`` is the certificate every process of the cluster presents, as server and as
  client, on every TLS connection: to etcd and between hosts. It names `TLS_SERVER_NAME` (and
  the addresses it was made for, for other etcd clients such as etcdctl), and the cluster's
  clients check that name, whatever address they dial (`Credentials.etcd_auth` asks the same
  of the etcd client): pods reached at IPs known only once they run are no problem.

Whoever holds the file is a member of the cluster: it is as secret as the token alone was.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CREDENTIALS_VERSION",
    "TLS_SERVER_NAME",
    "Credentials",
    "CredentialsError",
    "TlsIdentity",
    "make_credentials",
]

CREDENTIALS_VERSION = 1
TLS_SERVER_NAME = "actorcore-cluster"
"""The name in every cluster certificate, which clients check instead of the address they dial."""

_VALIDITY = datetime.timedelta(days=3650)
_FIELDS = ("cluster", "address", "token", "ca", "cert", "key")


class CredentialsError(ValueError):
    """A credentials file that cannot be used: missing, unreadable by us, readable by others,
    or not credentials; the message names the file and what to do."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """What a process needs to be a member of one cluster (see the module docstring)."""

    cluster: str
    address: str
    token: str
    ca: str
    cert: str
    key: str
    etcd_tls: bool = True  # the cluster's etcd takes `cert` (the one a head runs); False: an existing etcd

    def __repr__(self) -> str:
        return f"Credentials(cluster={self.cluster!r}, address={self.address!r}, <secrets hidden>)"

    def to_json(self) -> str:
        """The file's content."""
        return json.dumps({"version": CREDENTIALS_VERSION, **{f: getattr(self, f) for f in _FIELDS},
                           "etcd_tls": self.etcd_tls}, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "the credentials") -> Credentials:
        """Parse `to_json`'s output; `CredentialsError` naming `source` if it is not that."""
        try:
            data = json.loads(text)
        except ValueError as e:
            raise CredentialsError(f"{source} is not a credentials file (not JSON: {e})") from None
        if not isinstance(data, dict) or data.get("version") != CREDENTIALS_VERSION:
            raise CredentialsError(f"{source} is not a version-{CREDENTIALS_VERSION} actorcore credentials file")
        missing = [f for f in _FIELDS if not isinstance(data.get(f), str) or not data[f]]
        if missing:
            raise CredentialsError(f"{source} lacks {', '.join(missing)}: make it again with `actorcore start "
                                   "--head` or `actorcore credentials new`")
        etcd_tls = data.get("etcd_tls", True)
        if not isinstance(etcd_tls, bool):
            raise CredentialsError(f"{source}: etcd_tls must be true or false, not {etcd_tls!r}")
        return cls(**{f: data[f] for f in _FIELDS}, etcd_tls=etcd_tls)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Credentials:
        """Read the file at `path`. A file that others than its owner may read is refused: its
        secrets may already be known."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise CredentialsError(f"no credentials file at {path}") from None
        except OSError as e:
            raise CredentialsError(f"cannot open the credentials file {path}: {e.strerror or e}") from None
        with os.fdopen(fd) as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise CredentialsError(
                    f"the credentials file {path} can be read by others (mode {stat.S_IMODE(mode):04o}): "
                    f"its secrets may be known. Fix its mode with `chmod 600 {path}`, or make new "
                    "credentials (a new cluster) if others may have read it.")
            return cls.from_json(f.read(), source=f"the credentials file {path}")

    def tls_files(self, directory: str | os.PathLike) -> dict[str, str]:
        """Write the CA, the certificate and the key as PEM files (mode 0600) in `directory`,
        for what takes files (etcd, its client); return ``{"ca", "cert", "key"}`` paths."""
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        paths = {}
        for name, pem in (("ca", self.ca), ("cert", self.cert), ("key", self.key)):
            target = directory / f"{name}.pem"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(pem)
            paths[name] = str(target)
        return paths

    def etcd_auth(self, directory: str | os.PathLike) -> dict[str, str]:
        """The etcd client's ``auth`` for the etcd a head runs with these credentials: `tls_files`
        in `directory`, and the name its certificate is checked for (`TLS_SERVER_NAME`)."""
        return {**self.tls_files(directory), "server_name": TLS_SERVER_NAME}

    @property
    def tls(self) -> TlsIdentity:
        """The CA, certificate and key alone: what a process needs for TLS (never the token)."""
        return TlsIdentity(self.ca, self.cert, self.key)


@dataclass(frozen=True, repr=False)
class TlsIdentity:
    """A cluster's CA, and the certificate and key its processes present (`Credentials.tls`):
    TLS for gRPC as the kernel takes it (`kernel.remote.grpc_tls.GrpcTls`)."""

    ca: str
    cert: str
    key: str

    def __repr__(self) -> str:
        return "TlsIdentity(<secrets hidden>)"

    def to_dict(self) -> dict[str, str]:
        """``{"ca", "cert", "key"}`` PEM texts, to hand to a child process (`process_secrets`)."""
        return {"ca": self.ca, "cert": self.cert, "key": self.key}

    @classmethod
    def from_dict(cls, data: dict | None) -> TlsIdentity | None:
        """The inverse of `to_dict` (None for None)."""
        return None if not data else cls(data["ca"], data["cert"], data["key"])

    def grpc_server_credentials(self):
        """TLS for a gRPC server of the cluster: presents `cert`, requires a client certificate
        signed by the cluster's CA."""
        import grpc

        return grpc.ssl_server_credentials(
            [(self.key.encode(), self.cert.encode())], root_certificates=self.ca.encode(),
            require_client_auth=True)

    def grpc_channel_credentials(self):
        """TLS for a gRPC channel to a server of the cluster (use it with `grpc_channel_options`)."""
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.encode(), private_key=self.key.encode(), certificate_chain=self.cert.encode())

    @staticmethod
    def grpc_channel_options() -> tuple[tuple[str, str], ...]:
        """The channel options that make a client check `TLS_SERVER_NAME`, not the address it dials."""
        return (("grpc.ssl_target_name_override", TLS_SERVER_NAME),)

    #: the name a client checks in the certificate of the server it dials
    server_name = TLS_SERVER_NAME

    def ssl_server_context(self) -> ssl.SSLContext:
        """TLS for a plain TCP server of the cluster (the kernel's streams): presents `cert`,
        requires a client certificate signed by the cluster's CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.verify_mode = ssl.CERT_REQUIRED
        return self._ssl_identity(context)

    def ssl_client_context(self) -> ssl.SSLContext:
        """TLS for a plain TCP client of the cluster: checks the server's certificate against
        the cluster's CA and `server_name` (pass it as ``server_hostname``), presents `cert`."""
        return self._ssl_identity(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))

    def _ssl_identity(self, context: ssl.SSLContext) -> ssl.SSLContext:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cadata=self.ca)
        # `ssl` loads a key from a file only: an anonymous memory file keeps it off every disk
        # (Linux), else a file only we can read, removed at once.
        pem = (self.cert + "\n" + self.key).encode()
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("actorcore-tls", os.MFD_CLOEXEC)
            try:
                os.write(fd, pem)
                context.load_cert_chain(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            return context
        with tempfile.TemporaryDirectory(prefix="actorcore-tls-") as directory:  # mode 0700
            path = Path(directory, "identity.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            context.load_cert_chain(path)
        return context


def make_credentials(cluster: str, address: str, token: str, hosts: list[str] = (), *,
                     etcd_tls: bool = True) -> Credentials:
    """New credentials for the cluster `cluster` whose etcd is at `address`, with secret
    `token`: a fresh CA, and a certificate for `TLS_SERVER_NAME` and the addresses `hosts`
    (IPs, or names) signed by it. The CA's key is not kept. `etcd_tls`: the cluster's etcd
    takes that certificate (False for an existing etcd with credentials of its own)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + _VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"actorcore cluster CA ({cluster})")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(TLS_SERVER_NAME)]
    for host in dict.fromkeys(["127.0.0.1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_SERVER_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Credentials(
        cluster=cluster, address=address, token=token,
        ca=ca_cert.public_bytes(pem).decode(),
        cert=cert.public_bytes(pem).decode(),
        key=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
        etcd_tls=etcd_tls,
    )
