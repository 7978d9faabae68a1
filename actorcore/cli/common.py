"""What the `actorcore` commands share: argument types whose errors name the flag, the etcd
credential flags, and asking the cluster's etcd a question.

Bad arguments exit with code 2 and name the flag (argparse prefixes ``argument --flag:``);
failures at run time are reported by `fail` and exit with code 1.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys

from ..env import ETCD_PASSWORD_ENV, MIN_LEASE_TTL

__all__ = [
    "DEFAULT_PORT",
    "add_etcd_auth_flags",
    "add_query_flags",
    "ask_cluster",
    "count",
    "endpoints",
    "etcd_auth",
    "existing_file",
    "fail",
    "ip",
    "last_error",
    "lease_ttl",
    "port",
    "port_or_free",
    "replicas",
    "resources",
]

DEFAULT_PORT = 6380  # the etcd port of a head that runs its own etcd


# -- argument types ------------------------------------------------------------------------


def _number(text: str, *, minimum: float, integer: bool = False) -> float:
    least = f"{minimum:d}" if integer else f"{minimum:g}"
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if integer else 'a number'} >= {least}, got {text!r}") from None
    if not value >= minimum:  # NaN too
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {text!r}")
    return value


def count(text: str) -> float:
    """A quantity >= 0 (``--num-cpus``)."""
    return _number(text, minimum=0)


def object_store_memory(text: str) -> int:
    """Bytes, at least `MIN_OBJECT_STORE_MEMORY` (``--object-store-memory``)."""
    from ..node_resources import MIN_OBJECT_STORE_MEMORY

    return int(_number(text, minimum=MIN_OBJECT_STORE_MEMORY, integer=True))


def lease_ttl(text: str) -> float:
    """Seconds, at least `MIN_LEASE_TTL`."""
    return _number(text, minimum=MIN_LEASE_TTL)


def replicas(text: str) -> int:
    """An integer >= 1."""
    return int(_number(text, minimum=1, integer=True))


def port(text: str) -> int:
    """A TCP port."""
    value = int(_number(text, minimum=1, integer=True))
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {text!r}")
    return value


def port_or_free(text: str) -> int:
    """A TCP port, or 0 for a free one."""
    if text.strip() == "0":
        return 0
    try:
        return port(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535) or 0 (a free port), got {text!r}") from None


def resources(text: str) -> dict:
    """A JSON object of custom resource name -> quantity >= 0 (CPU and GPU have flags of their own)."""
    try:
        parsed = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object of name -> quantity, e.g. '{{\"disk\": 2}}'; got {text!r} ({e})") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object of name -> quantity, e.g. '{{\"disk\": 2}}'; got {text!r}")
    for name, quantity in parsed.items():
        if name in ("CPU", "GPU"):
            raise argparse.ArgumentTypeError(
                f"use --num-{name.lower()}s instead of {{{json.dumps(name)}: ...}} in --resources")
        if not name:
            raise argparse.ArgumentTypeError("a resource needs a name")
        if isinstance(quantity, bool) or not isinstance(quantity, (int, float)) or quantity < 0:
            raise argparse.ArgumentTypeError(
                f"resource {name!r} needs a quantity >= 0, got {json.dumps(quantity)}")
    return {name: float(quantity) for name, quantity in parsed.items()}


def endpoints(text: str) -> str:
    """``HOST:PORT[,HOST:PORT...]`` (an etcd's endpoints), normalized."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected HOST:PORT[,HOST:PORT...], got nothing")
    for item in items:
        address = item.split("://", 1)[-1].rstrip("/")
        host, _, number = address.rpartition(":")
        if (not host or not number.isdigit() or not 0 < int(number) < 65536
                or (":" in host and not host.startswith("["))):
            raise argparse.ArgumentTypeError(
                f"expected HOST:PORT[,HOST:PORT...] (e.g. 192.168.1.10:{DEFAULT_PORT}), got {item!r}")
    return ",".join(item.split("://", 1)[-1].rstrip("/") for item in items)


def ip(text: str) -> str:
    """An IP address (IPv6 with or without brackets)."""
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address of this machine, got {text!r}") from None


def existing_file(text: str) -> str:
    """The absolute path of an existing file."""
    path = os.path.abspath(os.path.expanduser(text))
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


def directory(text: str) -> str:
    """The absolute path of a folder (made if missing; it must be writable)."""
    path = os.path.abspath(os.path.expanduser(text))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot make folder {text!r}: {error.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"folder {text!r} is not writable")
    return path


# -- etcd credentials and questions to etcd ------------------------------------------------


class _RefusedOnCommandLine(argparse.Action):
    """A secret given on the command line: refused, naming what to use instead (argv is
    visible to every user of the machine, e.g. in ``ps``, for the life of the process)."""

    def __init__(self, option_strings, dest, instead: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.instead = instead

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(f"argument {option_string}: a secret on the command line is visible to every user of "
                     f"this machine (ps); use {self.instead}")


def add_etcd_auth_flags(command: argparse.ArgumentParser) -> None:
    """--etcd-user, --etcd-password-file, --etcd-ca, --etcd-cert, --etcd-key (read by
    `etcd_auth`); the password itself is never taken from the command line."""
    group = command.add_argument_group("etcd credentials (an etcd with authentication or TLS)")
    group.add_argument("--etcd-user", metavar="USER", help="etcd user name")
    group.add_argument("--etcd-password-file", metavar="FILE", type=existing_file,
                       help=f"a file holding the etcd password (or set ${ETCD_PASSWORD_ENV})")
    group.add_argument("--etcd-password", action=_RefusedOnCommandLine,
                       instead=f"--etcd-password-file FILE or ${ETCD_PASSWORD_ENV}")
    group.add_argument("--etcd-ca", metavar="FILE", type=existing_file,
                       help="CA bundle (PEM) to check etcd's certificate")
    group.add_argument("--etcd-cert", metavar="FILE", type=existing_file, help="client certificate (PEM) for etcd")
    group.add_argument("--etcd-key", metavar="FILE", type=existing_file, help="the client certificate's key (PEM)")


def etcd_auth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict | None:
    """The etcd credentials the flags of `add_etcd_auth_flags` give, or None. The password comes
    from ``--etcd-password-file`` (its first line) or ``$ACTORCORE_ETCD_PASSWORD``."""
    password = None
    if args.etcd_password_file:
        if not args.etcd_user:
            parser.error("argument --etcd-password-file: needs --etcd-user")
        password = _read_password(args.etcd_password_file, parser)
    elif args.etcd_user:
        password = os.environ.get(ETCD_PASSWORD_ENV)
    if args.etcd_user and not password:
        parser.error(f"argument --etcd-user: needs --etcd-password-file FILE (or ${ETCD_PASSWORD_ENV})")
    if bool(args.etcd_cert) != bool(args.etcd_key):
        parser.error("argument --etcd-cert: needs --etcd-key, and the other way round")
    auth = {"user": args.etcd_user, "password": password, "ca": args.etcd_ca,
            "cert": args.etcd_cert, "key": args.etcd_key}
    return {k: v for k, v in auth.items() if v} or None


def _read_password(path: str, parser: argparse.ArgumentParser) -> str:
    try:
        with open(path) as f:
            password = f.readline().rstrip("\r\n")
    except OSError as e:
        parser.error(f"argument --etcd-password-file: cannot read {path}: {e.strerror or e}")
    if not password:
        parser.error(f"argument --etcd-password-file: {path} is empty (the password is its first line)")
    return password


def add_query_flags(command: argparse.ArgumentParser, json_help: str) -> None:
    """--address and --json, for the commands that ask the cluster's etcd."""
    command.add_argument("--address", type=endpoints, metavar="HOST:PORT",
                         help="the cluster's etcd (default: the cluster started or joined on this machine)")
    command.add_argument("--json", action="store_true", help=json_help)


def fail(command: str, message: str) -> int:
    """Report a failure of `actorcore COMMAND` on stderr; return the exit code 1."""
    print(f"actorcore {command}: {message}", file=sys.stderr)
    return 1


def last_error(error: BaseException) -> str:
    """The "(last error: ...)" part of an etcd client's error, or all of it."""
    text = str(error)
    start = text.find("(last error: ")
    return text[start + 1:text.find(")", start)] if start >= 0 else text


def ask_cluster(command: str, address: str | None, auth: dict | None, query):
    """`await query(client, cluster)` against the cluster's etcd (the one of this machine unless
    `address` names another): its result, or the exit code of a reported failure."""
    import asyncio

    from .. import cluster_files as files
    from ..gcs.etcd_client import EtcdAuthError, EtcdClient, EtcdUnavailableError
    from ..gcs.sealed import SealedEtcd, TamperedRecordError

    address = address or (files.read_cluster_info() or {}).get("address")
    if not address:
        return fail(command, "no cluster to ask: pass --address HOST:PORT (the cluster's etcd), or start one "
                             "on this machine with `actorcore start --head`")
    cluster, recorded_auth = files.cluster_at(address)
    auth = recorded_auth if auth is None else auth

    async def ask():
        client = await EtcdClient.connect(address, auth=auth, timeout=5)
        try:  # what etcd holds is sealed with the cluster token: every record read is checked
            return await query(SealedEtcd(client, files.read_token()), cluster)
        finally:
            await client.close()

    try:
        return asyncio.run(ask())
    except EtcdUnavailableError as e:
        return fail(command, f"cannot reach etcd at {address} ({last_error(e)}); is the cluster running?")
    except (EtcdAuthError, OSError, ValueError, TamperedRecordError) as e:
        return fail(command, str(e))
