"""The cluster's files on this machine (docs/architecture.md, "Security model"), under `home()`:

| file | holds | written by |
|---|---|---|
| ``token`` | the cluster token (mode 0600) | ``actorcore start --head``; ``start --credentials`` |
| ``credentials.json`` | the cluster's credentials (mode 0600; see `actorcore.credentials`) | ``start --head``; ``start --credentials`` |
| ``tls/`` | the credentials' CA, certificate and key as PEM files, for etcd and its clients | the same |
| ``cluster.json`` | ``{"address", "cluster", "head_node_id", "etcd_auth"}`` (mode 0600: it may hold the etcd password) | ``start --head``; ``start --address`` if there is none |
| ``nodes/<node_id>.json`` | ``{"node_id", "pid", "head", "etcd", "log", "cluster", "node_ip", "started"}`` | ``start``, for ``stop`` |
| ``logs/`` | the nodes' output (``node-<node_id>.log``); ``logs/<node_id>/``: its workers' (``worker-<worker_id>-<pid>.out``, ``.err``, rotated) | the nodes |
| ``etcd/`` | the data dir of the etcd a head node runs | that etcd |
| ``prom_metrics_service_discovery.json`` | Prometheus file-SD targets: every alive node's ``/metrics`` endpoint | a head started with ``--metrics-export-port`` |

`home()` is ``$ACTORCORE_HOME`` if set, else ``~/.actorcore``. It and its subdirectories are
kept private (mode 0700, re-applied to a folder that exists already); one owned by another
user is refused (`UnsafeFileError`). Files are written atomically (a private temporary file,
then a rename), so a reader sees the old or the new content, and secrets are never readable
by others, not even for a moment.

`read_token` looks, in order, at an explicit file, ``$ACTORCORE_TOKEN`` and ``home()/token``;
a token file that other users may access is refused (`UnsafeFileError`), never read.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import warnings
from pathlib import Path

from .credentials import Credentials
from .env import HOME_ENV, TOKEN_ENV

__all__ = [
    "HOME_ENV",
    "TOKEN_ENV",
    "TokenNotFoundError",
    "UnsafeFileError",
    "cluster_at",
    "cluster_info_path",
    "credentials_at",
    "credentials_path",
    "etcd_data_dir",
    "home",
    "logs_dir",
    "metrics_discovery_path",
    "new_token",
    "node_files",
    "nodes_dir",
    "read_cluster_info",
    "read_token",
    "remove_cluster_info",
    "remove_metrics_discovery",
    "remove_node_file",
    "tls_dir",
    "token_path",
    "write_cluster_info",
    "write_credentials",
    "write_metrics_discovery",
    "write_node_file",
    "write_token",
]


class TokenNotFoundError(FileNotFoundError):
    """No cluster token in any of the places `read_token` looks."""


class UnsafeFileError(PermissionError):
    """A cluster file or folder others could read or replace: its message names it and the fix."""


def home() -> Path:
    """``$ACTORCORE_HOME`` or ``~/.actorcore``, created if missing and kept private (see the
    module's docstring)."""
    path = Path(os.environ.get(HOME_ENV) or Path.home() / ".actorcore").expanduser()
    return _private_dir(path, parents=True)


def _subdir(name: str) -> Path:
    return _private_dir(home() / name)


def _private_dir(path: Path, parents: bool = False) -> Path:
    """`path`, a folder made or made again mode 0700; `UnsafeFileError` if another user owns it."""
    path.mkdir(mode=0o700, parents=parents, exist_ok=True)
    st = os.stat(path)
    if st.st_uid != os.geteuid():
        raise UnsafeFileError(
            f"the actorcore folder {path} belongs to another user (uid {st.st_uid}), who could read or "
            f"replace the cluster's files: use a folder of your own (set ${HOME_ENV}) or remove that one")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def logs_dir() -> Path:
    """``home()/logs`` (created): the output of the nodes started on this machine."""
    return _subdir("logs")


def nodes_dir() -> Path:
    """``home()/nodes`` (created): one file per node started on this machine."""
    return _subdir("nodes")


def etcd_data_dir() -> Path:
    """``home()/etcd``: the data dir of the etcd a head node runs (etcd creates it)."""
    return home() / "etcd"


def token_path() -> Path:
    """``home()/token``: the cluster token of this machine."""
    return home() / "token"


def credentials_path() -> Path:
    """``home()/credentials.json``: the credentials of the cluster of this machine."""
    return home() / "credentials.json"


def tls_dir() -> Path:
    """``home()/tls`` (created): the PEM files of those credentials, for what takes files (etcd)."""
    return _subdir("tls")


def write_credentials(credentials: Credentials, path: str | os.PathLike | None = None) -> Path:
    """Store `credentials` at `path` (default `credentials_path`) with mode 0600, atomically; return the path."""
    return _write_private(Path(path) if path is not None else credentials_path(), credentials.to_json().encode())


def credentials_at(address: str) -> Credentials | None:
    """The credentials of this machine (`credentials_path`) if they are those of the cluster
    whose etcd is at `address`; else None. `CredentialsError` if the file is there but unsafe."""
    path = credentials_path()
    if not path.exists():
        return None
    credentials = Credentials.load(path)
    return credentials if credentials.address == address else None


def cluster_info_path() -> Path:
    """``home()/cluster.json``: how to reach the cluster of this machine."""
    return home() / "cluster.json"


def _write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` with mode 0600, atomically (never through a symlink)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def new_token() -> str:
    """A fresh cluster token: 128 random bits, in hex."""
    return secrets.token_hex(16)


def write_token(token: str) -> Path:
    """Store ``token`` in `token_path` (mode 0600); return the path."""
    return _write_private(token_path(), token.encode() + b"\n")


def read_token(token_file: str | os.PathLike | None = None) -> str:
    """The cluster token: from ``token_file`` if given, else ``$ACTORCORE_TOKEN``, else
    `token_path`. Raise `TokenNotFoundError` naming every place looked at, and
    `UnsafeFileError` for a token file other users may access."""
    if token_file is not None:
        token = _read_token_file(Path(token_file))
        if token is None:
            raise TokenNotFoundError(f"no cluster token in {os.fspath(token_file)!r} (--token-file): "
                                     "the file is missing or empty. " + _how_to_get_one())
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    default = token_path()
    token = _read_token_file(default)
    if token is None:
        raise TokenNotFoundError(
            f"no cluster token found: looked at --token-file (not given), ${TOKEN_ENV} (unset) and "
            f"{default} (missing or empty). " + _how_to_get_one())
    return token


def _how_to_get_one() -> str:
    return ("`actorcore start --head` makes a cluster's token and prints the path of its file; copy that "
            f"file to this machine and pass --token-file PATH, or set ${TOKEN_ENV} to its content.")


def _read_token_file(path: Path) -> str | None:
    try:
        with open(path) as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise UnsafeFileError(f"refusing the cluster token file {path}: other users may access it "
                                      f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}` (and make "
                                      "a new cluster if someone else may have read it)")
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def write_cluster_info(info: dict) -> Path:
    """Store how to reach the cluster from this machine (`cluster_info_path`, mode 0600):
    ``{"address", "cluster", "head_node_id", "etcd_auth"}``."""
    return _write_private(cluster_info_path(), json.dumps(info, indent=2).encode() + b"\n")


def read_cluster_info() -> dict | None:
    """What `write_cluster_info` stored, or None if nothing (readable) is there."""
    try:
        return json.loads(cluster_info_path().read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        warnings.warn(f"ignoring {cluster_info_path()}: not valid JSON ({e})", stacklevel=2)
        return None


def cluster_at(address: str) -> tuple[str, dict | None]:
    """(the cluster's name, its etcd credentials or None) as `read_cluster_info` records them if
    the cluster of this machine is the one whose etcd is at `address`; else ("default", None)."""
    info = read_cluster_info()
    if info is None or info.get("address") != address:
        return "default", None
    return info.get("cluster", "default"), info.get("etcd_auth") or None


def remove_cluster_info() -> bool:
    """Remove `cluster_info_path`; whether it existed."""
    try:
        cluster_info_path().unlink()
    except FileNotFoundError:
        return False
    return True


def _node_path(node_id: str) -> Path:
    if not node_id or "/" in node_id or node_id.startswith("."):
        raise ValueError(f"bad node id {node_id!r}")
    return nodes_dir() / f"{node_id}.json"


def metrics_discovery_path() -> Path:
    """Where a head writes the Prometheus file-service-discovery JSON (named as Ray names it)."""
    return home() / "prom_metrics_service_discovery.json"


def write_metrics_discovery(targets: list[str]) -> Path:
    """Write the file-SD JSON listing `targets` (HOST:PORT of every alive node's ``/metrics``)."""
    content = [{"labels": {"job": "actorcore"}, "targets": sorted(targets)}]
    return _write_private(metrics_discovery_path(), json.dumps(content, indent=2).encode() + b"\n")


def remove_metrics_discovery() -> None:
    """Remove the file-SD JSON (the head stops)."""
    metrics_discovery_path().unlink(missing_ok=True)


def write_node_file(record: dict) -> Path:
    """Record a node started on this machine: ``{"node_id", "pid", "head", "etcd", "log",
    "cluster", "node_ip", "started"}`` in ``nodes/<node_id>.json``."""
    return _write_private(_node_path(record["node_id"]), json.dumps(record, indent=2).encode() + b"\n")


def node_files() -> list[dict]:
    """The records of the nodes started on this machine, by file name (unreadable ones skipped)."""
    records = []
    for path in sorted(nodes_dir().glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            continue  # removed meanwhile
        except ValueError as e:
            warnings.warn(f"ignoring the node file {path}: not valid JSON ({e})", stacklevel=2)
            continue
        if isinstance(record, dict) and record.get("node_id"):
            records.append(record)
    return records


def remove_node_file(node_id: str) -> bool:
    """Remove the node's file; whether it existed."""
    try:
        _node_path(node_id).unlink()
    except FileNotFoundError:
        return False
    return True
