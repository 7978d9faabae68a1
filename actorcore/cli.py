"""The `actorcore` command line: ``start``, ``stop``, ``status`` (Ray's flag names) and
``microbenchmark``.

- ``actorcore start --head`` makes a cluster: a fresh token (`cluster_files.write_token`),
  the head node process (``python -m actorcore.node CONFIG_JSON``, which also starts and
  supervises the cluster's etcd unless ``--etcd`` names one), ``cluster.json`` for
  ``init(address="auto")``, and prints how to join, connect and stop.
- ``actorcore start --address HOST:PORT`` joins a node to the cluster whose etcd is there.
- ``actorcore stop`` stops the nodes started on this machine (their files under
  `cluster_files.home`): the other nodes first, then the heads.
- ``actorcore status`` prints what the cluster's etcd says (`actorcore.status`).
- ``actorcore supervise SPEC.toml`` runs the services daemon (`actorcore.services.daemon`);
  ``actorcore supervise status`` shows it and its services (`actorcore.services.status`),
  ``actorcore supervise reload`` makes it re-read its spec.

The token reaches a node in its environment (``ACTORCORE_TOKEN``), never on its command line.
A node reports readiness with one JSON line on a pipe (``ready_fd``); `start` then also waits
for the node's record in etcd (a node reports ready before it registers, and even when the
etcd it runs failed), at most `READY_TIMEOUT` seconds in all, and shows the node's log when it
fails. Nodes run in a session of their own, also with ``--block`` (whose process forwards
SIGTERM and Ctrl-C to the node alone, not to its workers); SIGTERM or Ctrl-C while a node
starts stops it. Bad arguments exit with code 2 and name the flag; failures at run time exit
with code 1.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ._version import __version__

READY_TIMEOUT = 60.0  # seconds a starting node may take until it reports ready
STOP_TIMEOUT = 15.0  # seconds `stop` waits after SIGTERM before SIGKILL
START_STOP_TIMEOUT = 2.0  # the same for a node that failed or was interrupted while starting
ETCD_TIMEOUT = 10.0  # seconds a started node's etcd may take to answer
DEFAULT_PORT = 6380  # the etcd port of a head that runs its own etcd
DEFAULT_LEASE_TTL = 10.0
MIN_LEASE_TTL = 2.0
ETCD_PASSWORD_ENV = "ACTORCORE_ETCD_PASSWORD"
ETCD_AUTH_ENV = "ACTORCORE_ETCD_AUTH"  # the etcd credentials, as JSON, for a node process
_LOG_TAIL_LINES = 40


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorcore",
        description="actorcore: Ray Core's API on an actor kernel with supervision trees and etcd.",
    )
    parser.add_argument("--version", action="version", version=f"actorcore {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_start(subparsers)
    _add_stop(subparsers)
    _add_status(subparsers)
    _add_microbenchmark(subparsers)
    _add_supervise(subparsers)
    return parser


# -- argument types: each error names the flag (argparse prefixes "argument --flag:") ------------


def _number(text: str, *, minimum: float, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if integer else 'a number'} >= {minimum:g}, got {text!r}") from None
    if not value >= minimum:  # NaN too
        raise argparse.ArgumentTypeError(f"must be >= {minimum:g}, got {text!r}")
    return value


def _count(text: str) -> float:
    return _number(text, minimum=0)


def _lease_ttl(text: str) -> float:
    return _number(text, minimum=MIN_LEASE_TTL)


def _replicas(text: str) -> int:
    return int(_number(text, minimum=1, integer=True))


def _port(text: str) -> int:
    port = int(_number(text, minimum=1, integer=True))
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {text!r}")
    return port


def _resources(text: str) -> dict:
    try:
        resources = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object of name -> quantity, e.g. '{{\"disk\": 2}}'; got {text!r} ({e})") from None
    if not isinstance(resources, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object of name -> quantity, e.g. '{{\"disk\": 2}}'; got {text!r}")
    for name, quantity in resources.items():
        if name in ("CPU", "GPU"):
            raise argparse.ArgumentTypeError(
                f"use --num-{name.lower()}s instead of {{{json.dumps(name)}: ...}} in --resources")
        if not name:
            raise argparse.ArgumentTypeError("a resource needs a name")
        if isinstance(quantity, bool) or not isinstance(quantity, (int, float)) or quantity < 0:
            raise argparse.ArgumentTypeError(
                f"resource {name!r} needs a quantity >= 0, got {json.dumps(quantity)}")
    return {name: float(quantity) for name, quantity in resources.items()}


def _endpoints(text: str) -> str:
    """``HOST:PORT[,HOST:PORT...]`` (an etcd's endpoints), normalized."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected HOST:PORT[,HOST:PORT...], got nothing")
    for item in items:
        address = item.split("://", 1)[-1].rstrip("/")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or (":" in host and not host.startswith("[")):
            raise argparse.ArgumentTypeError(
                f"expected HOST:PORT[,HOST:PORT...] (e.g. 192.168.1.10:{DEFAULT_PORT}), got {item!r}")
    return ",".join(item.split("://", 1)[-1].rstrip("/") for item in items)


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address of this machine, got {text!r}") from None


def _file(text: str) -> str:
    path = os.path.abspath(os.path.expanduser(text))
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return path


# -- start ---------------------------------------------------------------------------------------


def _add_etcd_auth_flags(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("etcd credentials (an etcd with authentication or TLS)")
    group.add_argument("--etcd-user", metavar="USER", help="etcd user name")
    group.add_argument("--etcd-password", metavar="PASSWORD",
                       help=f"etcd password (or set ${ETCD_PASSWORD_ENV}, which other users cannot see in ps)")
    group.add_argument("--etcd-ca", metavar="FILE", type=_file, help="CA bundle (PEM) to check etcd's certificate")
    group.add_argument("--etcd-cert", metavar="FILE", type=_file, help="client certificate (PEM) for etcd")
    group.add_argument("--etcd-key", metavar="FILE", type=_file, help="the client certificate's key (PEM)")


def _add_start(subparsers) -> None:
    command = subparsers.add_parser(
        "start",
        help="start a head node (--head) or join a node to a cluster (--address) on this machine",
        description="Start a node on this machine: `actorcore start --head` makes a new cluster (and, "
                    "without --etcd, runs its etcd); `actorcore start --address HOST:PORT` joins one. "
                    "The node runs in the background unless --block is given; `actorcore stop` stops it.",
    )
    role = command.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start the head node of a new cluster")
    role.add_argument("--address", type=_endpoints, metavar="HOST:PORT",
                      help="join the cluster whose etcd is at HOST:PORT[,HOST:PORT...]")
    command.add_argument("--port", type=_port, default=None,
                         help=f"head: the port of the etcd it starts (default {DEFAULT_PORT})")
    command.add_argument("--etcd", type=_endpoints, metavar="HOST:PORT[,...]",
                         help="head: use this existing etcd cluster instead of starting one")
    command.add_argument("--node-ip-address", type=_ip, metavar="IP",
                         help="the IP this node binds and other nodes reach it at (default 127.0.0.1; when "
                              "joining a cluster on another machine, this machine's IP towards it)")
    command.add_argument("--num-cpus", type=_count, metavar="N", help="CPUs of this node (default: all)")
    command.add_argument("--num-gpus", type=_count, metavar="N", default=0.0, help="GPUs of this node (default 0)")
    command.add_argument("--resources", type=_resources, metavar="JSON", default={},
                         help='custom resources of this node, e.g. \'{"disk": 2}\'')
    command.add_argument("--token-file", type=_file, metavar="PATH",
                         help="join: the cluster's token file (default: $ACTORCORE_TOKEN, else the "
                              "token file of this machine)")
    command.add_argument("--object-replicas", type=_replicas, metavar="K",
                         help="head: copies of each large object kept on distinct nodes (default 1)")
    command.add_argument("--lease-ttl", type=_lease_ttl, metavar="SECONDS",
                         help=f"head: seconds without a keepalive before a node counts as dead "
                              f"(default {DEFAULT_LEASE_TTL:g}, at least {MIN_LEASE_TTL:g})")
    command.add_argument("--block", action="store_true",
                         help="stay in the foreground until SIGTERM or Ctrl-C, then stop the node")
    _add_etcd_auth_flags(command)
    command.set_defaults(handler=_start, parser=command)


def _etcd_auth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict | None:
    password = args.etcd_password or (os.environ.get(ETCD_PASSWORD_ENV) if args.etcd_user else None)
    if args.etcd_password and not args.etcd_user:
        parser.error("argument --etcd-password: needs --etcd-user")
    if args.etcd_user and not password:
        parser.error(f"argument --etcd-user: needs --etcd-password (or ${ETCD_PASSWORD_ENV})")
    if bool(args.etcd_cert) != bool(args.etcd_key):
        parser.error("argument --etcd-cert: needs --etcd-key, and the other way round")
    auth = {"user": args.etcd_user, "password": password, "ca": args.etcd_ca,
            "cert": args.etcd_cert, "key": args.etcd_key}
    return {k: v for k, v in auth.items() if v} or None


def _check_start_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not args.head:
        for flag in ("port", "etcd", "object_replicas", "lease_ttl"):
            if getattr(args, flag) is not None:
                parser.error(f"argument --{flag.replace('_', '-')}: only for the head node (start --head)")
    else:
        if args.token_file:
            parser.error("argument --token-file: only when joining (start --address); "
                         "start --head makes a new token")
        if args.etcd and args.port is not None:
            parser.error("argument --port: the port of the etcd the head starts; with --etcd there is none")
        if not args.etcd and (args.etcd_user or args.etcd_password or args.etcd_ca or args.etcd_cert):
            parser.error("argument --etcd-user/--etcd-password/--etcd-ca/--etcd-cert: only with --etcd "
                         "(the etcd the head starts itself has no authentication)")


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ip_towards(host: str) -> str:
    """The IP of this machine that packets to ``host`` leave from (no packet is sent)."""
    host = host.strip("[]")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _hosts(endpoints: str) -> list[str]:
    return [item.rpartition(":")[0] for item in endpoints.split(",")]


def _fail(command: str, message: str) -> int:
    print(f"actorcore {command}: {message}", file=sys.stderr)
    return 1


def _interrupted(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _start(args: argparse.Namespace) -> int:
    # SIGTERM while a node starts stops it, as Ctrl-C does (see _spawn_node).
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _start_node(args)
    except KeyboardInterrupt:
        print("actorcore start: interrupted; the node being started was stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_node(args: argparse.Namespace) -> int:
    from . import cluster_files as files

    parser = args.parser
    _check_start_args(args, parser)
    auth = _etcd_auth(args, parser)
    _forget_stopped_nodes()

    if args.head:
        running = [r for r in files.node_files() if r.get("head") and _node_running(r)]
        if running:
            r = running[0]
            return _fail("start", f"a head node already runs on this machine (node {r['node_id']}, pid {r['pid']}, "
                                  f"etcd {r.get('etcd')}): stop it first with `actorcore stop`, or join it with "
                                  "`actorcore start --address ...`")
        token = files.new_token()
        etcd = args.etcd
        external = etcd is not None
        node_ip = args.node_ip_address or (
            "127.0.0.1" if not external or all(map(_is_loopback, _hosts(etcd))) else _ip_towards(_hosts(etcd)[0]))
        port = args.port or DEFAULT_PORT
        if not external:
            etcd = _hostport(node_ip, port)
            taken = _port_taken(node_ip, port)
            if taken:
                return _fail("start", f"cannot start etcd on {etcd}: {taken}. Another cluster's etcd? Stop it "
                                      "(`actorcore stop`) or pass another --port.")
        cluster = "default"
    else:
        try:
            token = files.read_token(args.token_file)
        except OSError as e:  # TokenNotFoundError among them
            return _fail("start", str(e))
        etcd = args.address
        external = True
        hosts = _hosts(etcd)
        node_ip = args.node_ip_address or (
            "127.0.0.1" if all(map(_is_loopback, hosts)) else _ip_towards(hosts[0]))
        cluster, recorded_auth = files.cluster_at(etcd)
        auth = recorded_auth if auth is None else auth

    if external:
        problem = _check_etcd(etcd, auth)
        if problem:
            return _fail("start", problem)

    node_id = uuid.uuid4().hex[:16]
    config = {
        "cluster_mode": True, "cluster": cluster, "etcd": etcd, "etcd_auth": auth, "head": args.head,
        "node_ip": node_ip, "num_cpus": args.num_cpus if args.num_cpus is not None else float(os.cpu_count() or 1),
        "num_gpus": args.num_gpus, "resources": args.resources, "node_id": node_id, "session": node_id,
        "cwd": os.getcwd(), "sys_path": [p or os.getcwd() for p in sys.path],
    }
    if args.head:
        config["lease_ttl"] = args.lease_ttl or DEFAULT_LEASE_TTL
        config["object_replicas"] = args.object_replicas or 1
        if not external:
            # A new head is a new cluster (a new token): nothing of a former one's etcd data is kept.
            shutil.rmtree(files.etcd_data_dir(), ignore_errors=True)
            config["start_etcd"] = {"port": port, "data_dir": str(files.etcd_data_dir()), "host": node_ip}

    log_path = None if args.block else files.logs_dir() / f"node-{node_id}.log"
    node, failed = _spawn_node(config, token, log_path)
    if failed:
        if "start_etcd" in config:
            shutil.rmtree(config["start_etcd"]["data_dir"], ignore_errors=True)
        return _fail("start", failed)
    record = {"node_id": node_id, "pid": node.pid, "head": args.head, "session": node_id, "etcd": etcd,
              "log": str(log_path) if log_path else None, "cluster": cluster, "node_ip": node_ip,
              "started": time.time()}
    files.write_node_file(record)
    if args.head:
        token_file = files.write_token(token)
        files.write_cluster_info({"address": etcd, "cluster": cluster, "head_node_id": node_id, "etcd_auth": auth})
        print(_head_banner(node_id, node.pid, etcd, external, token_file, log_path, node_ip, config))
    else:
        if files.read_cluster_info() is None:
            files.write_cluster_info({"address": etcd, "cluster": cluster, "head_node_id": None, "etcd_auth": auth})
        print(_join_banner(node_id, node.pid, etcd, log_path, node_ip, config))
    sys.stdout.flush()
    if not args.block:
        return 0
    return _block(node, record)


def _port_taken(host: str, port: int) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as etcd (Go) does
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def _check_etcd(endpoints: str, auth: dict | None) -> str | None:
    """None if etcd answers at ``endpoints`` and takes ``auth``; else what is wrong, in one line."""
    import asyncio

    from .gcs.etcd_client import EtcdAuthError, EtcdClient, EtcdUnavailableError

    async def check() -> None:
        client = await EtcdClient.connect(endpoints, auth=auth, timeout=5)
        await client.close()

    try:
        asyncio.run(check())
    except EtcdUnavailableError as e:
        return f"cannot reach etcd at {endpoints} ({_last_error(e)}). Is the cluster's etcd running there?"
    except (EtcdAuthError, OSError, ValueError) as e:
        return str(e)
    return None


def _last_error(error: BaseException) -> str:
    text = str(error)
    start = text.find("(last error: ")
    return text[start + 1:text.find(")", start)] if start >= 0 else text


def _spawn_node(config: dict, token: str, log_path: Path | None) -> tuple[subprocess.Popen, str | None]:
    """Start the node process and wait until it is ready and registered in etcd; return it and
    None, or, if it failed, what went wrong (having stopped it and removed what it left)."""
    from . import cluster_files as files

    deadline = time.monotonic() + READY_TIMEOUT
    read_fd, write_fd = os.pipe()
    # Secrets travel in the node's environment, never on its command line (which `ps` shows).
    auth = config.get("etcd_auth")
    config = {**config, "ready_fd": write_fd}
    # Our own processes cache their bytecode even where PYTHONDONTWRITEBYTECODE is set.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env[files.TOKEN_ENV] = token
    if auth:
        env[ETCD_AUTH_ENV] = json.dumps(auth)
    output = None
    if log_path is not None:
        output = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        # Its own session even with --block: a Ctrl-C on the terminal reaches only this process,
        # which forwards it to the node alone (in the terminal's process group the node's workers
        # would get it too, and each would die with a KeyboardInterrupt traceback mid-shutdown).
        node = subprocess.Popen(
            [sys.executable, "-m", "actorcore.node", json.dumps({**config, "etcd_auth": None})],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output, pass_fds=(write_fd,), env=env,
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
        if output is not None:
            os.close(output)
    try:
        why = _wait_ready(node, read_fd, config, deadline)
    except BaseException:  # Ctrl-C (or SIGTERM, see _start): leave no node behind unrecorded
        _terminate(node)
        _cleanup_session(config["session"])
        raise
    finally:
        os.close(read_fd)
    if why is None:
        return node, None
    if node.poll() is None:
        _terminate(node)
    else:
        why = f"{why}; the node process exited with code {node.returncode}"
    _cleanup_session(config["session"])
    if log_path is None:
        return node, f"{why} (its output is above)"
    return node, f"{why}; its log {log_path} ends with:\n{_tail(log_path)}"


def _wait_ready(node: subprocess.Popen, read_fd: int, config: dict, deadline: float) -> str | None:
    """None once the node reported ready and registered in etcd, else what went wrong."""
    line = _read_line(read_fd, READY_TIMEOUT)
    try:
        ready = json.loads(line) if line else None
    except ValueError:
        ready = None
    if line is None:
        return f"the node did not report ready within {READY_TIMEOUT:g} s"
    if not line:  # it closed the pipe without a line: it is exiting
        try:
            node.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        return "the node closed its ready pipe without reporting ready"
    if not (isinstance(ready, dict) and all(k in ready for k in ("node_id", "pid", "kernel", "transfer"))):
        return f"the node reported an unexpected ready line {line!r}"
    return _wait_registered(node, config, deadline)


def _cleanup_session(session: str) -> int:
    from .objects import cleanup_session

    return cleanup_session(session)


def _wait_registered(node: subprocess.Popen, config: dict, deadline: float) -> str | None:
    """Wait until the node's record is in etcd (``nodes/<node_id>``); None once it is, else why not.
    A node reports ready before it registers (and may report it although its etcd is failing):
    this is what tells a working node. It gives up at once when the node exits."""
    import asyncio

    from .gcs import schema
    from .gcs.etcd_client import EtcdAuthError, EtcdClient, EtcdUnavailableError

    etcd, key = config["etcd"], schema.key(config["cluster"], "nodes", config["node_id"])
    etcd_deadline = min(time.monotonic() + ETCD_TIMEOUT, deadline)

    async def wait() -> str | None:
        client = None
        try:
            while True:
                if node.poll() is not None:
                    return "the node exited before it registered in etcd"
                if client is None:
                    try:  # in short attempts, to notice soon if the node exits meanwhile
                        client = await EtcdClient.connect(etcd, auth=config["etcd_auth"], timeout=1)
                    except EtcdUnavailableError as e:
                        if time.monotonic() > etcd_deadline:
                            return f"the node is up, but its etcd at {etcd} is not ({_last_error(e)})"
                        continue
                if await client.get(key) is not None:
                    return None
                if time.monotonic() > deadline:
                    return f"the node did not register in etcd ({etcd}) within {READY_TIMEOUT:g} s"
                await asyncio.sleep(0.02)
        finally:
            if client is not None:
                await client.close()

    try:
        return asyncio.run(wait())
    except EtcdUnavailableError as e:
        return f"etcd at {etcd} stopped answering while the node registered ({_last_error(e)})"
    except EtcdAuthError as e:
        return str(e)


def _read_line(fd: int, timeout: float) -> str | None:
    """The first line written to ``fd`` within ``timeout`` seconds: '' at EOF without one,
    None on timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace") if b"\n" in data else ""


def _terminate(node: subprocess.Popen) -> None:
    """Stop a node that is not ready: it has nothing to save, and may not heed SIGTERM before it
    is, so SIGKILL (its process group) soon after."""
    node.terminate()
    try:
        node.wait(START_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(node.pid)
        node.wait(5)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"  (cannot read it: {e})"
    return "\n".join("  " + line for line in text.splitlines()[-lines:]) or "  (empty)"


def _resources_text(config: dict) -> str:
    resources = {"CPU": config["num_cpus"], "GPU": config["num_gpus"], **config["resources"]}
    return ", ".join(f"{name} {quantity:g}" for name, quantity in resources.items() if quantity or name == "CPU")


def _head_banner(node_id, pid, address, external, token_file, log_path, node_ip, config) -> str:
    from . import cluster_files as files

    etcd_line = (f"{address} (an existing etcd, --etcd)" if external
                 else f"{address}, run by the head node (data in {files.etcd_data_dir()})")
    lines = [
        f"Started the head node {node_id} (pid {pid}) of a new actorcore cluster.",
        f"  etcd (the GCS):   {etcd_line}",
        f"  node resources:   {_resources_text(config)}",
        f"  cluster token:    {token_file} (mode 0600; every node and driver needs it, keep it secret)",
    ]
    if log_path is not None:
        lines.append(f"  node log:         {log_path}")
    lines += [
        "",
        "To add a node, run on its machine (another machine needs a copy of the token file):",
        f"    actorcore start --address {address} --token-file {token_file}",
        "",
        "To connect a driver:",
        "    import actorcore",
        f'    actorcore.init(address="{address}")',
        ('  (address="auto" works on this machine; a driver on another machine needs the token too: '
         f"copy the token file to ~/.actorcore/token there, or set ${files.TOKEN_ENV})"),
        "",
        "To stop the nodes started on this machine:",
        "    actorcore stop",
    ]
    if not external and _is_loopback(node_ip):
        lines += ["", (f"The cluster listens on {node_ip} only: to let other machines join, start the head "
                       "with --node-ip-address set to an IP of this machine they can reach.")]
    return "\n".join(lines)


def _join_banner(node_id, pid, address, log_path, node_ip, config) -> str:
    lines = [
        f"Started node {node_id} (pid {pid}) at {node_ip}, joined to the cluster at {address}.",
        f"  node resources:   {_resources_text(config)}",
    ]
    if log_path is not None:
        lines.append(f"  node log:         {log_path}")
    lines += ["", "To stop the nodes started on this machine:", "    actorcore stop"]
    return "\n".join(lines)


def _block(node: subprocess.Popen, record: dict) -> int:
    """Wait in the foreground for the node; forward SIGTERM and SIGINT to it (and SIGHUP, when
    the terminal goes away, as SIGTERM)."""
    forwarded = []

    def forward(signum, _frame) -> None:
        forwarded.append(signum)
        try:
            node.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)
        except ProcessLookupError:
            pass

    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in signals}
    try:
        print("The node runs in the foreground (--block): SIGTERM or Ctrl-C stops it.", flush=True)
        code = node.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _forget_node(record)
    if forwarded:
        return 0
    print(f"actorcore start: the node exited with code {code}", file=sys.stderr)
    return 1 if code else 0


# -- stop ----------------------------------------------------------------------------------------


def _add_stop(subparsers) -> None:
    command = subparsers.add_parser(
        "stop", help="stop the actorcore nodes started on this machine",
        description="Stop the nodes `actorcore start` started on this machine: the other nodes first, "
                    f"then the heads; SIGTERM, and SIGKILL after {STOP_TIMEOUT:g} s.")
    command.add_argument("--force", action="store_true", help="SIGKILL at once")
    command.set_defaults(handler=_stop, parser=command)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[-1][:1] != "Z"
    except FileNotFoundError:
        return not os.path.isdir("/proc")
    except OSError:
        return True


def _node_running(record: dict) -> bool:
    """Whether the node of ``record`` still runs (its pid alive and, where /proc tells,
    running ``actorcore.node`` with this node id: a reused pid is not ours)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not _pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except FileNotFoundError:
        return not os.path.isdir("/proc")
    except OSError:
        return True
    return b"actorcore.node" in cmdline and record["node_id"].encode() in cmdline


def _kill(pid: int) -> None:
    """SIGKILL ``pid``, and its process group if it leads one (a node `start` started leads
    its own, with its workers)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(records: list[dict], timeout: float) -> list[dict]:
    """Wait up to ``timeout`` for the nodes to exit; return those still running."""
    deadline = time.monotonic() + timeout
    pidfds = {}
    for record in records:
        try:
            pidfds[os.pidfd_open(record["pid"])] = record
        except (AttributeError, OSError):
            pass
    try:
        while True:
            left = [r for r in records if _node_running(r)]
            remaining = deadline - time.monotonic()
            if not left or remaining <= 0:
                return left
            if len(pidfds) == len(records):
                select.select(list(pidfds), [], [], remaining)  # readable once a process exited
            else:
                time.sleep(min(0.05, remaining))
    finally:
        for fd in pidfds:
            os.close(fd)


def _stop(args: argparse.Namespace) -> int:
    from . import cluster_files as files

    records = files.node_files()
    if not records:
        files.remove_cluster_info()
        print("no actorcore nodes were running on this machine")
        return 0
    stopped = 0
    for heads in (False, True):  # the other nodes first: the heads may run the etcd they use
        group = [r for r in records if bool(r.get("head")) == heads]
        running = [r for r in group if _node_running(r)]
        for record in list(running):
            try:
                if args.force:
                    _kill(record["pid"])
                else:
                    os.kill(record["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
            except PermissionError:
                print(f"cannot signal node {record['node_id']} (pid {record['pid']}): it belongs to another "
                      "user; stop it as that user", file=sys.stderr)
                running.remove(record)
                group.remove(record)
        stubborn = _wait_gone(running, 5.0 if args.force else STOP_TIMEOUT)
        for record in stubborn:
            _kill(record["pid"])
        still = {r["node_id"] for r in _wait_gone(stubborn, 5.0)}
        for record in group:
            removed = _forget_node(record)
            role = "head node" if heads else "node"
            if record not in running:
                what = "was not running"
            elif record["node_id"] in still:
                what = "did not exit after SIGKILL"
            elif args.force or record in stubborn:
                what = "killed (SIGKILL)" if args.force else f"killed (SIGKILL) after {STOP_TIMEOUT:g} s"
            else:
                what = "stopped"
            extra = f"; removed {removed} shared-memory segment(s) it left" if removed else ""
            print(f"{role} {record['node_id']} (pid {record.get('pid')}): {what}{extra}")
            stopped += record in running
    if not stopped:
        print("no actorcore nodes were running on this machine")
    return 0


def _forget_node(record: dict) -> int:
    """Remove what a node that no longer runs left here: its shared memory, its node file and,
    once no node is left, cluster.json. Returns the number of segments removed."""
    from . import cluster_files as files

    removed = _cleanup_session(record["session"]) if record.get("session") else 0
    files.remove_node_file(record["node_id"])
    if not files.node_files():
        files.remove_cluster_info()
    return removed


def _forget_stopped_nodes() -> None:
    """Drop the files of nodes that died without `stop` (e.g. a reboot)."""
    from . import cluster_files as files

    for record in files.node_files():
        if not _node_running(record):
            _forget_node(record)


# -- status --------------------------------------------------------------------------------------


def _add_query_flags(command, json_help: str) -> None:
    """--address and --json, for the commands that ask the cluster's etcd."""
    command.add_argument("--address", type=_endpoints, metavar="HOST:PORT",
                         help="the cluster's etcd (default: the cluster started or joined on this machine)")
    command.add_argument("--json", action="store_true", help=json_help)


def _add_status(subparsers) -> None:
    command = subparsers.add_parser(
        "status", help="show the cluster's nodes, resources and actors",
        description="Show what the cluster's etcd says: the nodes (alive and dead) with their resources "
                    "and object stores, the actors by state, and the totals.")
    _add_query_flags(command, "print one JSON object")
    _add_etcd_auth_flags(command)
    command.set_defaults(handler=_status, parser=command)


def _status(args: argparse.Namespace) -> int:
    from .status import format_status, gather_status

    status = _ask_cluster("status", args.address, _etcd_auth(args, args.parser), gather_status)
    if isinstance(status, int):
        return status
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _ask_cluster(command: str, address: str | None, auth: dict | None, query):
    """`await query(client, cluster)` against the cluster's etcd (the one of this machine unless
    `address` names another): its result, or the exit code of a reported failure."""
    import asyncio

    from . import cluster_files as files
    from .gcs.etcd_client import EtcdAuthError, EtcdClient, EtcdUnavailableError

    address = address or (files.read_cluster_info() or {}).get("address")
    if not address:
        return _fail(command, "no cluster to ask: pass --address HOST:PORT (the cluster's etcd), or start one "
                              "on this machine with `actorcore start --head`")
    cluster, recorded_auth = files.cluster_at(address)
    auth = recorded_auth if auth is None else auth

    async def ask():
        client = await EtcdClient.connect(address, auth=auth, timeout=5)
        try:
            return await query(client, cluster)
        finally:
            await client.close()

    try:
        return asyncio.run(ask())
    except EtcdUnavailableError as e:
        return _fail(command, f"cannot reach etcd at {address} ({_last_error(e)}); is the cluster running?")
    except (EtcdAuthError, OSError, ValueError) as e:
        return _fail(command, str(e))


# -- microbenchmark ------------------------------------------------------------------------------


def _add_microbenchmark(subparsers) -> None:
    command = subparsers.add_parser(
        "microbenchmark",
        help="Ray's `ray microbenchmark` workloads (and a few more) under actorcore and under Ray",
        description="Run benchmarks/microbenchmark.py: Ray's microbenchmark workloads, init time, a "
                    "100 MB zero-copy get and a 2M-word MapReduce under actorcore, then under Ray "
                    "(another virtualenv's python), and print both with ratios (> 1: actorcore better).",
    )
    command.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    command.add_argument("--quick", action="store_true", help="short runs, for smoke tests")
    command.add_argument("--ray-python", metavar="PATH",
                         help="python of a virtualenv with Ray (default: /tmp/rayvenv/bin/python if it exists)")
    command.add_argument("--no-ray", action="store_true", help="run actorcore only")
    command.add_argument("--cluster", action="store_true",
                         help="run the cluster benchmarks instead (benchmarks/cluster.py: cross-node "
                              "transfer and round trip, 3 nodes vs 1), against Ray's cluster_utils.Cluster")
    command.add_argument("--timeout", type=float, default=None,
                         help="seconds without a result before a workload counts as hung")
    command.set_defaults(handler=_microbenchmark)


def _microbenchmark(args: argparse.Namespace) -> int:
    # The benchmarks package sits at the repository root, next to the actorcore package.
    root = str(Path(__file__).resolve().parents[1])
    if not (Path(root) / "benchmarks" / "microbenchmark.py").exists():
        print(f"actorcore microbenchmark: benchmarks/microbenchmark.py not found under {root} "
              "(it ships with the source tree, not the wheel)", file=sys.stderr)
        return 2
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks import microbenchmark

    return microbenchmark.run(args)


# -- supervise -----------------------------------------------------------------------------------


def _add_supervise(subparsers) -> None:
    command = subparsers.add_parser(
        "supervise", help="keep the services (named actors) of a TOML spec alive",
        description="Keep the services of SPEC.toml running as named, detached actors in the namespace "
                    "'services' (actorcore.services.daemon): restarted by the spec's supervision "
                    "policy, checkpointed, adopted by a restarted daemon. SIGTERM/Ctrl-C stop it and "
                    "its services gracefully. Without --address it uses the cluster started on this "
                    "machine, or starts a head node (stopped on exit).")
    command.add_argument("spec", metavar="SPEC.toml", help="the services (actorcore.services.spec)")
    command.add_argument("--address", type=_endpoints, metavar="HOST:PORT",
                         help="the cluster's etcd (default: the cluster of this machine, or a new local head)")
    command.add_argument("--detach", action="store_true", help="run in the background (needs --pid-file)")
    command.add_argument("--pid-file", metavar="PATH", help="write the daemon's pid there while it runs")
    command.set_defaults(handler=_supervise, parser=command)
    status = subparsers.add_parser(
        "supervise-status", prog="actorcore supervise status", help="show the services of `actorcore supervise` (also: supervise status)",
        description="The daemon (state, leader, standbys, escalations, last reload) and the tree of its "
                    "services: per actor its state, node, pid, restarts, uptime and the age of its last "
                    "checkpoint, as the cluster's etcd records them.")
    _add_query_flags(status, 'print JSON: {"daemon": {...}, "services": [...]}')
    status.set_defaults(handler=_supervise_status, parser=status)
    reload = subparsers.add_parser(
        "supervise-reload", prog="actorcore supervise reload", help="make `actorcore supervise` re-read its spec (also: supervise reload)",
        description="Ask the leading daemon to re-read its spec file (as SIGHUP does): added services "
                    "start, removed ones stop, changed ones restart, unchanged ones are untouched. "
                    "Prints what changed; an invalid spec changes nothing and exits 1.")
    _add_query_flags(reload, "print the reload's result as JSON")
    reload.set_defaults(handler=_supervise_reload, parser=reload)


def _supervise(args: argparse.Namespace) -> int:
    from . import cluster_files as files
    from .services.leadership import READY_FD_ENV

    if args.detach:
        if not args.pid_file:
            args.parser.error("--detach needs --pid-file PATH (how to find and stop the daemon later)")
        command = [sys.executable, "-m", "actorcore", "supervise", os.path.abspath(args.spec),
                   "--pid-file", os.path.abspath(args.pid_file)]
        if args.address:
            command += ["--address", args.address]
        log_path = files.logs_dir() / f"supervise-{int(time.time())}.log"
        # It returns once every service is up, or the daemon stands by for another (it writes
        # which to this pipe), so the next command can use them.
        read_fd, write_fd = os.pipe()
        env = {**os.environ, READY_FD_ENV: str(write_fd)}
        with open(log_path, "ab") as log:
            daemon = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True, pass_fds=(write_fd,), env=env)
        os.close(write_fd)
        line = _read_line(read_fd, READY_TIMEOUT)
        os.close(read_fd)
        if not line:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            return _fail("supervise", f"the daemon did not start its services (pid {daemon.pid}); "
                                      f"its log {log_path} ends with:\n{tail}")
        print(f"actorcore supervise: daemon pid {daemon.pid}, {line.strip()}, log {log_path}; stop it with "
              f"kill $(cat {args.pid_file})")
        return 0
    import logging

    from .services.daemon import main as supervise_main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return supervise_main(args.spec, args.address, args.pid_file)


def _supervise_status(args: argparse.Namespace) -> int:
    from .services.status import format_status, gather

    status = _ask_cluster("supervise status", args.address, None, gather)
    if isinstance(status, int):
        return status
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _supervise_reload(args: argparse.Namespace) -> int:
    from .services.daemon import request_reload

    async def ask(client, cluster):
        try:
            return await request_reload(client, cluster)
        except (RuntimeError, TimeoutError) as error:
            return _fail("supervise reload", str(error))

    result = _ask_cluster("supervise reload", args.address, None, ask)
    if isinstance(result, int):
        return result
    if args.json:
        print(json.dumps(result, indent=2))
    elif result.get("ok"):
        done = "; ".join(f"{what}: {', '.join(result[what])}" for what in ("added", "removed", "changed")
                         if result.get(what))
        print(f"actorcore supervise reload: {done or 'nothing changed'}")
    else:
        print(f"actorcore supervise reload: {result.get('error') or '; '.join(result.get('errors', []))}",
              file=sys.stderr)
    return 0 if result.get("ok") else 1


# `actorcore supervise status|reload ...` are the subcommands `supervise-status|reload`: the
# supervise command itself takes a spec file as its first argument.
SUPERVISE_SUBCOMMANDS = ("status", "reload")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "supervise" and argv[1] in SUPERVISE_SUBCOMMANDS and not os.path.exists(argv[1]):
        argv[:2] = [f"supervise-{argv[1]}"]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler = getattr(args, "handler", None)
    return handler(args) if handler is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
