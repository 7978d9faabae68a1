"""``actorcore start``: start a head node (a new cluster) or join a node to a cluster.

- ``actorcore start --head`` makes a cluster: fresh credentials (a token, a CA and a
  certificate: `credentials.make_credentials`), or those of ``--credentials FILE`` (made by
  ``actorcore credentials new``, e.g. for a Kubernetes Secret), the head node process (which
  also starts and supervises the cluster's etcd unless ``--etcd`` names one), ``cluster.json``
  for ``init(address="auto")``, and prints how to join, connect and stop.
- ``actorcore start --address HOST:PORT`` joins a node to the cluster whose etcd is there.

The node is started by the node launcher (`actorcore.node_launcher`), which hands it the token
on a pipe. `start` waits for its ready line and then for its record in etcd (a node reports
ready before it registers, and even when the etcd it runs failed), at most `READY_TIMEOUT`
seconds in all, and shows the node's log when it fails. Nodes run in a session of their own,
also with ``--block`` (whose process forwards SIGTERM and Ctrl-C to the node alone, not to its
workers); SIGTERM or Ctrl-C while a node starts stops it. With ``--block`` the `start` process
owns its node: if it dies, even by SIGKILL, the node and its workers stop (the node watches a
pipe whose other end only this process holds).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .. import cluster_files as files
from ..credentials import Credentials, CredentialsError, make_credentials
from ..dashboard_address import (
    DASHBOARD_PORT_RETRIES,
    DEFAULT_DASHBOARD_HOST,
    DEFAULT_DASHBOARD_PORT,
    dashboard_address,
)
from ..env import DEFAULT_LEASE_TTL, MIN_LEASE_TTL
from ..node_config import EtcdToStart, NodeConfig
from ..node_launcher import NodeProcess, NodeStartError, launch
from ..node_resources import accelerator_type_resources, resolve_gpu_ids
from . import common, progress, stop
from .interrupt import Interrupted, Interruptible
from .local_nodes import forget_node, forget_stopped_nodes, kill, node_running

__all__ = ["READY_TIMEOUT", "add_start"]

READY_TIMEOUT = 60.0  # seconds a starting node may take until it reports ready
START_STOP_TIMEOUT = 2.0  # seconds a node that failed or was interrupted while starting gets after SIGTERM
ETCD_TIMEOUT = 10.0  # seconds a started node's etcd may take to answer
_LOG_TAIL_LINES = 40


def add_start(subparsers) -> None:
    """The ``start`` command."""
    command = subparsers.add_parser(
        "start",
        help="start a head node (--head) or join a node to a cluster (--address) on this machine",
        description="Start a node on this machine: `actorcore start --head` makes a new cluster (and, "
                    "without --etcd, runs its etcd); `actorcore start --address HOST:PORT` joins one. "
                    "The node runs in the background unless --block is given; `actorcore stop` stops it.",
    )
    role = command.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start the head node of a new cluster")
    role.add_argument("--address", type=common.endpoints, metavar="HOST:PORT",
                      help="join the cluster whose etcd is at HOST:PORT[,HOST:PORT...]")
    command.add_argument("--port", type=common.port, default=None,
                         help=f"head: the port of the etcd it starts (default {common.DEFAULT_PORT})")
    command.add_argument("--etcd", type=common.endpoints, metavar="HOST:PORT[,...]",
                         help="head: use this existing etcd cluster instead of starting one")
    command.add_argument("--node-ip-address", type=common.ip, metavar="IP",
                         help="the IP this node binds and other nodes reach it at (default 127.0.0.1; when "
                              "joining a cluster on another machine, this machine's IP towards it)")
    command.add_argument("--num-cpus", type=common.count, metavar="N", help="CPUs of this node (default: all)")
    command.add_argument("--num-gpus", type=common.count, metavar="N",
                         help="GPUs of this node (default: the NVIDIA GPUs CUDA_VISIBLE_DEVICES names, else "
                              "those nvidia-smi lists, else none)")
    command.add_argument("--memory", type=common.count, metavar="BYTES",
                         help="the memory resource of this node, in bytes (default: 70%% of the memory "
                              "available now)")
    command.add_argument("--object-store-memory", type=common.object_store_memory, metavar="BYTES",
                         help="the capacity of this node's object store, in bytes (default: 30%% of the memory "
                              "available now, at most 95%% of /dev/shm's free space); objects beyond it spill "
                              "to disk")
    command.add_argument("--object-spilling-directory", type=common.directory, metavar="PATH",
                         help="where this node's store spills objects (default: the temporary folder, $TMPDIR)")
    command.add_argument("--metrics-export-port", type=common.port_or_free, metavar="PORT",
                         help="serve this node's Prometheus metrics on http://NODE_IP:PORT/metrics (0: a free "
                              "port, shown in the node's record; default: no metrics)")
    command.add_argument("--resources", type=common.resources, metavar="JSON", default={},
                         help='custom resources of this node, e.g. \'{"disk": 2}\'')
    command.add_argument("--credentials", type=common.existing_file, metavar="PATH",
                         help="join: the cluster's credentials file, made by `start --head` or `credentials "
                              "new` (its etcd accepts no one else); head: start the cluster of these "
                              "credentials (made by `actorcore credentials new`) instead of making new ones")
    command.add_argument("--token-file", type=common.existing_file, metavar="PATH",
                         help="join a cluster whose etcd is an existing one (--etcd at its head): the "
                              "cluster's token file (default: $ACTORCORE_TOKEN, else the token file of "
                              "this machine)")
    command.add_argument("--object-replicas", type=common.replicas, metavar="K",
                         help="head: copies of each large object kept on distinct nodes (default 1)")
    command.add_argument("--lease-ttl", type=common.lease_ttl, metavar="SECONDS",
                         help=f"head: seconds without a keepalive before a node counts as dead "
                              f"(default {DEFAULT_LEASE_TTL:g}, at least {MIN_LEASE_TTL:g})")
    command.add_argument("--include-dashboard", action=argparse.BooleanOptionalAction, default=None,
                         help="head: serve the web dashboard (default: on for the head node)")
    command.add_argument("--dashboard-host", type=common.ip, metavar="IP", default=None,
                         help=f"head: the IP the dashboard listens on (default {DEFAULT_DASHBOARD_HOST}; 0.0.0.0 "
                              "for every interface)")
    command.add_argument("--dashboard-port", type=common.port, metavar="PORT", default=None,
                         help=f"head: the dashboard's port (default {DEFAULT_DASHBOARD_PORT}, or the first free one "
                              f"of the {DASHBOARD_PORT_RETRIES} after it)")
    command.add_argument("--block", action="store_true",
                         help="stay in the foreground until SIGTERM or Ctrl-C, then stop the node")
    common.add_etcd_auth_flags(command)
    command.set_defaults(handler=_start, parser=command)


def _check_start_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not args.head:
        for flag in ("port", "etcd", "object_replicas", "lease_ttl", "include_dashboard", "dashboard_host",
                     "dashboard_port"):
            if getattr(args, flag) is not None:
                parser.error(f"argument --{flag.replace('_', '-')}: only for the head node (start --head)")
    else:
        if args.token_file:
            parser.error("argument --token-file: only when joining (start --address); start --head makes new "
                         "credentials, or takes those of --credentials FILE")
        if args.include_dashboard is False and (args.dashboard_host or args.dashboard_port is not None):
            parser.error("argument --dashboard-host/--dashboard-port: not with --no-include-dashboard")
        if args.etcd and args.port is not None:
            parser.error("argument --port: the port of the etcd the head starts; with --etcd there is none")
        if not args.etcd and (args.etcd_user or args.etcd_password_file or args.etcd_ca or args.etcd_cert):
            parser.error("argument --etcd-user/--etcd-password-file/--etcd-ca/--etcd-cert: only with --etcd "
                         "(the etcd the head starts itself takes the cluster's credentials)")


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ip_towards(host: str) -> str:
    """The IP of this machine that packets to `host` leave from (no packet is sent)."""
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


def _start(args: argparse.Namespace) -> int:
    # SIGTERM or Ctrl-C while a node starts stops it (see _spawn_node).
    with Interruptible() as interrupt:
        try:
            return _start_node(args, interrupt)
        except Interrupted:
            print("actorcore start: interrupted; the node being started was stopped", file=sys.stderr)
            return 130


def _start_node(args: argparse.Namespace, interrupt: Interruptible) -> int:
    parser = args.parser
    _check_start_args(args, parser)
    try:
        gpu_ids = resolve_gpu_ids(args.num_gpus)  # detected unless given
    except ValueError as e:
        return common.fail("start", str(e))
    auth = common.etcd_auth(args, parser)
    try:  # the node reads its worker log limits from the environment: a bad one is refused here
        from ..node.log_files import LogLimits

        LogLimits.from_env()
    except ValueError as e:
        return common.fail("start", str(e))
    forget_stopped_nodes()

    if args.head:
        running = [r for r in files.node_files() if r.get("head") and node_running(r)]
        if running:
            r = running[0]
            return common.fail(
                "start", f"a head node already runs on this machine (node {r['node_id']}, pid {r['pid']}, "
                         f"etcd {r.get('etcd')}): stop it first with `actorcore stop`, or join it with "
                         "`actorcore start --address ...`")
        try:
            given = Credentials.load(args.credentials) if args.credentials else None
        except CredentialsError as e:
            return common.fail("start", str(e))
        etcd = args.etcd
        external = etcd is not None
        if given is not None and given.etcd_tls == external:
            return common.fail("start", _credentials_mismatch(args.credentials, given))
        node_ip = args.node_ip_address or (
            "127.0.0.1" if not external or all(map(_is_loopback, _hosts(etcd))) else _ip_towards(_hosts(etcd)[0]))
        port = args.port or common.DEFAULT_PORT
        if not external:
            etcd = _hostport(node_ip, port)
            taken = _port_taken(node_ip, port)
            if taken:
                return common.fail("start", f"cannot start etcd on {etcd}: {taken}. Another cluster's etcd? "
                                            "Stop it (`actorcore stop`) or pass another --port.")
        dashboard, taken = _dashboard_address(args)
        if taken:
            return common.fail("start", f"cannot serve the dashboard on {dashboard}: {taken}. Pass another "
                                        "--dashboard-port, or --no-include-dashboard.")
        if given is None:
            credentials = make_credentials("default", etcd, files.new_token(), hosts=[node_ip], etcd_tls=not external)
        else:  # recorded on this machine with the address it reaches its etcd at (as `cluster.json`)
            credentials = dataclasses.replace(given, address=etcd)
        token, cluster = credentials.token, credentials.cluster
        if not external:
            auth = credentials.etcd_auth(files.tls_dir())
    else:
        etcd = args.address
        external = True
        hosts = _hosts(etcd)
        node_ip = args.node_ip_address or (
            "127.0.0.1" if all(map(_is_loopback, hosts)) else _ip_towards(hosts[0]))
        cluster, recorded_auth = files.cluster_at(etcd)
        given_auth, auth = auth, recorded_auth if auth is None else auth
        try:  # given, or this machine's if they are the cluster's (a second node on the head's machine)
            credentials = (Credentials.load(args.credentials) if args.credentials
                           else None if args.token_file else files.credentials_at(etcd))
        except CredentialsError as e:
            return common.fail("start", str(e))
        if credentials is not None:
            token, cluster = credentials.token, credentials.cluster
            if given_auth is None and credentials.etcd_tls:  # the etcd a head runs takes their certificate
                auth = credentials.etcd_auth(files.tls_dir())
        else:
            try:
                token = files.read_token(args.token_file)
            except OSError as e:  # TokenNotFoundError among them
                return common.fail("start", str(e))

    if external:
        problem = _check_etcd(etcd, auth)
        interrupt.check()
        if problem:
            return common.fail("start", problem)

    node_id = uuid.uuid4().hex[:16]
    if not args.head:
        dashboard = None
    start_etcd = None
    if args.head and not external:
        # A new head is a new cluster (a new token): nothing of a former one's etcd data is kept.
        shutil.rmtree(files.etcd_data_dir(), ignore_errors=True)
        start_etcd = EtcdToStart(port, str(files.etcd_data_dir()), node_ip,
                                 tls={name: auth[name] for name in ("ca", "cert", "key")})
    config = NodeConfig(
        node_id=node_id, etcd=etcd, cluster_mode=True, cluster=cluster, head=args.head, node_ip=node_ip,
        num_cpus=args.num_cpus if args.num_cpus is not None else float(os.cpu_count() or 1),
        num_gpus=len(gpu_ids) if args.num_gpus is None else args.num_gpus, gpu_ids=gpu_ids, memory=args.memory,
        resources={**accelerator_type_resources(len(gpu_ids)), **args.resources}, cwd=os.getcwd(),
        sys_path=[p or os.getcwd() for p in sys.path], start_etcd=start_etcd,
        lease_ttl=(args.lease_ttl or DEFAULT_LEASE_TTL) if args.head else None,
        object_replicas=(args.object_replicas or 1) if args.head else 1,
        object_store_memory=args.object_store_memory, object_spilling_directory=args.object_spilling_directory,
        metrics_export_port=args.metrics_export_port,
        dashboard=dashboard,
    )

    log_path = None if args.block else files.logs_dir() / f"node-{node_id}.log"
    interrupt.check()
    tls = credentials.tls.to_dict() if credentials is not None else None
    # (not with --block: the node's own output goes to this terminal)
    with progress.waiting("actorcore start: waiting for the node to start and register", enabled=not args.block):
        node, failed = _spawn_node(config, token, auth, tls, log_path, interrupt, owned=args.block)
    if failed:
        if start_etcd is not None:
            shutil.rmtree(start_etcd.data_dir, ignore_errors=True)
        if args.head:
            shutil.rmtree(files.tls_dir(), ignore_errors=True)
        return common.fail("start", failed)
    record = {"node_id": node_id, "pid": node.pid, "head": args.head, "etcd": etcd,
              "log": str(log_path) if log_path else None, "cluster": cluster, "node_ip": node_ip,
              "started": time.time(), "spill_base": config.object_spilling_directory}
    files.write_node_file(record)
    if args.head:
        files.write_token(token)
        credentials_file = files.write_credentials(credentials)
        files.write_cluster_info({"address": etcd, "cluster": cluster, "head_node_id": node_id, "etcd_auth": auth})
        print(_head_banner(node_id, node.pid, etcd, external, credentials_file, log_path, node_ip, config))
    else:
        if files.read_cluster_info() is None:
            files.write_cluster_info({"address": etcd, "cluster": cluster, "head_node_id": None, "etcd_auth": auth})
            if credentials is not None:  # what a driver on this machine needs
                files.write_token(token)
                files.write_credentials(dataclasses.replace(credentials, address=etcd))
        print(_join_banner(node_id, node.pid, etcd, log_path, node_ip, config))
    sys.stdout.flush()
    if not args.block:
        return 0
    return _block(node.process, record, interrupt.signum)


def _credentials_mismatch(path: str, credentials: Credentials) -> str:
    if credentials.etcd_tls:
        return (f"the credentials file {path} is for a cluster whose head runs its etcd: start the head without "
                "--etcd, or make credentials with `actorcore credentials new --external-etcd`")
    return (f"the credentials file {path} is for a cluster whose head uses an existing etcd (made with "
            "--external-etcd): pass it with --etcd HOST:PORT")


def _dashboard_address(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The head's dashboard as "HOST:PORT" (None: --no-include-dashboard), and why that port is
    taken (None if it is free): `dashboard.dashboard_address`."""
    if args.include_dashboard is False:
        return None, None
    return dashboard_address(args.dashboard_host, args.dashboard_port)


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
    """None if etcd answers at `endpoints` and takes `auth`; else what is wrong, in one line."""
    import asyncio

    from ..gcs.etcd_client import EtcdAuthError, EtcdClient, EtcdUnavailableError

    async def check() -> None:
        client = await EtcdClient.connect(endpoints, auth=auth, timeout=5)
        await client.close()

    try:
        asyncio.run(check())
    except EtcdUnavailableError as e:
        return f"cannot reach etcd at {endpoints} ({common.last_error(e)}). Is the cluster's etcd running there?"
    except (EtcdAuthError, OSError, ValueError) as e:
        return str(e)
    return None


def _spawn_node(config: NodeConfig, token: str, auth: dict | None, tls: dict | None, log_path: Path | None,
                interrupt: Interruptible, owned: bool) -> tuple[NodeProcess, str | None]:
    """Start the node process (`owned`: it stops when this process is gone) and wait until it is
    ready and registered in etcd; return it and None, or, if it failed, what went wrong (having
    stopped it and removed what it left). If a signal comes meanwhile, stop the node, remove what
    it left and raise `Interrupted`."""
    from ..objects import cleanup_session
    from ..objects.spill import remove_spill_directory

    deadline = time.monotonic() + READY_TIMEOUT
    # Its own session even with --block: a Ctrl-C on the terminal reaches only this process,
    # which forwards it to the node alone (in the terminal's process group the node's workers
    # would get it too, and each would die with a KeyboardInterrupt traceback mid-shutdown).
    node = launch(config, token=token, etcd_auth=auth, tls=tls, output=log_path, own_session=True, owned=owned)
    exit_noted = False
    try:
        try:
            node.wait_ready(READY_TIMEOUT, exit_timeout=stop.STOP_TIMEOUT, wake_fd=interrupt.fd)
            why = _wait_registered(node.process, config, auth, deadline, interrupt)
        except NodeStartError as error:
            why, exit_noted = str(error), error.exit_code is not None
        interrupt.check()
    except BaseException:  # Interrupted among them: leave no node behind unrecorded
        _terminate(node.process)
        cleanup_session(config.node_id)
        remove_spill_directory(config.node_id, config.object_spilling_directory)
        raise
    if why is None:
        return node, None
    if node.process.poll() is None:
        _terminate(node.process)
    elif not exit_noted:
        why = f"{why}; the node process exited with code {node.process.returncode}"
    cleanup_session(config.node_id)
    remove_spill_directory(config.node_id, config.object_spilling_directory)
    if log_path is None:
        return node, f"{why} (its output is above)"
    return node, f"{why}; its log {log_path} ends with:\n{_tail(log_path)}"


def _wait_registered(node: subprocess.Popen, config: NodeConfig, auth: dict | None, deadline: float,
                     interrupt: Interruptible) -> str | None:
    """Wait until the node's record is in etcd (``nodes/<node_id>``); None once it is, else why not.
    A node reports ready before it registers (and may report it although its etcd is failing):
    this is what tells a working node. It gives up at once when the node exits, and raises
    `Interrupted` soon (within a second) after a signal."""
    import asyncio

    from ..gcs import schema
    from ..gcs.etcd_client import EtcdAuthError, EtcdClient, EtcdUnavailableError

    etcd, key = config.etcd, schema.key(config.cluster, "nodes", config.node_id)
    etcd_deadline = min(time.monotonic() + ETCD_TIMEOUT, deadline)

    async def wait() -> str | None:
        client = None
        try:
            while True:
                interrupt.check()
                if node.poll() is not None:
                    return "the node exited before it registered in etcd"
                if client is None:
                    try:  # in short attempts, to notice soon if the node exits meanwhile
                        client = await EtcdClient.connect(etcd, auth=auth, timeout=1)
                    except EtcdUnavailableError as e:
                        if time.monotonic() > etcd_deadline:
                            return f"the node is up, but its etcd at {etcd} is not ({common.last_error(e)})"
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
        return f"etcd at {etcd} stopped answering while the node registered ({common.last_error(e)})"
    except EtcdAuthError as e:
        return str(e)


def _terminate(node: subprocess.Popen) -> None:
    """Stop a node that is not ready: it has nothing to save, and may not heed SIGTERM before it
    is, so SIGKILL (its process group) soon after."""
    node.terminate()
    try:
        node.wait(START_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill(node.pid)
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


def _resources_text(config: NodeConfig) -> str:
    resources = {"CPU": config.num_cpus, "GPU": config.num_gpus, **config.resources}
    return ", ".join(f"{name} {quantity:g}" for name, quantity in resources.items() if quantity or name == "CPU")


def _head_banner(node_id, pid, address, external, credentials_file, log_path, node_ip, config: NodeConfig) -> str:
    etcd_line = (f"{address} (an existing etcd, --etcd)" if external
                 else f"{address}, run by the head node (data in {files.etcd_data_dir()})")
    lines = [
        f"Started the head node {node_id} (pid {pid}) of a new actorcore cluster.",
        f"  etcd (the GCS):   {etcd_line}",
        f"  node resources:   {_resources_text(config)}",
        f"  credentials:      {credentials_file} (mode 0600; every node needs it: keep it secret)",
    ]
    if log_path is not None:
        lines.append(f"  node log:         {log_path}")
    if config.dashboard is not None:
        lines.append(f"  dashboard:        http://{config.dashboard} (log in with the cluster token)")
    lines += [
        "",
        "To add a node, run on its machine (another machine needs a copy of the credentials file):",
        f"    actorcore start --address {address} --credentials {credentials_file}",
        "",
        "To connect a driver:",
        "    import actorcore",
        f'    actorcore.init(address="{address}")',
        ('  (address="auto" works on this machine; a driver on another machine runs where a node '
         "was started with the credentials)"),
        "",
        "To stop the nodes started on this machine:",
        "    actorcore stop",
    ]
    if not external and _is_loopback(node_ip):
        lines += ["", (f"The cluster listens on {node_ip} only: to let other machines join, start the head "
                       "with --node-ip-address set to an IP of this machine they can reach.")]
    return "\n".join(lines)


def _join_banner(node_id, pid, address, log_path, node_ip, config: NodeConfig) -> str:
    lines = [
        f"Started node {node_id} (pid {pid}) at {node_ip}, joined to the cluster at {address}.",
        f"  node resources:   {_resources_text(config)}",
    ]
    if log_path is not None:
        lines.append(f"  node log:         {log_path}")
    lines += ["", "To stop the nodes started on this machine:", "    actorcore stop"]
    return "\n".join(lines)


def _block(node: subprocess.Popen, record: dict, pending: int | None) -> int:
    """Wait in the foreground for the node; forward SIGTERM and SIGINT to it (and SIGHUP, when
    the terminal goes away, as SIGTERM), and first the signal `pending`, if one came after the
    node had started."""
    forwarded = []

    def forward(signum, _frame) -> None:
        forwarded.append(signum)
        try:
            node.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)
        except ProcessLookupError:
            pass

    # The handlers stay until this process exits: a SIGTERM that comes as the node has just
    # ended (a pod's, after its preStop hook stopped the node) must not kill it mid-exit.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    if pending is not None:
        forward(pending, None)
    print("The node runs in the foreground (--block): SIGTERM or Ctrl-C stops it.", flush=True)
    code = node.wait()
    # Nothing is left to forward to, and the interpreter's teardown would put the default
    # handlers back (ignored ones it leaves): a late SIGTERM must not turn the exit into a kill.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    forget_node(record)
    if forwarded:
        return 0
    print(f"actorcore start: the node exited with code {code}", file=sys.stderr)
    return 1 if code else 0
