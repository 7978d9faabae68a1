"""``actorcore supervise``: the services daemon and the commands that talk to it.

- ``actorcore supervise SPEC.toml`` (also ``supervise run SPEC.toml``) runs the services
  daemon (`actorcore.services.daemon`);
- ``actorcore supervise status`` shows it and its services (`actorcore.services.status`);
- ``actorcore supervise reload`` makes it re-read its spec.

``status`` and ``reload`` are subcommands of the ``supervise`` group; a first word that names
no subcommand is the spec of ``run`` (a spec file called ``status`` is ``./status``). The
older spellings ``supervise-status`` and ``supervise-reload`` are commands of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from ..env import SUPERVISE_READY_FD_ENV
from . import common, progress

__all__ = ["add_supervise"]

#: seconds `supervise --detach` waits for the daemon to start its services (or stand by)
READY_TIMEOUT = 60.0


class _SubcommandOrSpec(argparse._SubParsersAction):
    """The subcommands of ``supervise``, where a first word that names none of them is the
    SPEC.toml of the default subcommand, ``run``."""

    default_command = "run"

    class _AnyWord:
        """Every word is a valid choice: the unknown ones are specs (see `__call__`)."""

        def __contains__(self, word) -> bool:
            return True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.choices = self._AnyWord()

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if values and values[0] not in self._name_parser_map:
            values = [self.default_command, *values]
        super().__call__(parser, namespace, values, option_string)


def add_supervise(subparsers) -> None:
    """The ``supervise`` group (run, status, reload) and its aliases ``supervise-status`` and
    ``supervise-reload``."""
    group = subparsers.add_parser(
        "supervise", help="keep the services (named actors) of a TOML spec alive",
        usage="actorcore supervise [-h] {SPEC.toml | run SPEC.toml | status | reload} ...",
        description="`actorcore supervise SPEC.toml` keeps the services of SPEC.toml running; "
                    "`supervise status` shows them, `supervise reload` makes the daemon re-read its spec.")
    group.register("action", "subcommand_or_spec", _SubcommandOrSpec)
    commands = group.add_subparsers(action="subcommand_or_spec", dest="supervise_command",
                                    metavar="{run,status,reload}", required=True)
    run = commands.add_parser(
        "run", prog="actorcore supervise", help="run the daemon (the default: `supervise SPEC.toml`)",
        description="Keep the services of SPEC.toml running as named, detached actors in the namespace "
                    "'services' (actorcore.services.daemon): restarted by the spec's supervision "
                    "policy, checkpointed, adopted by a restarted daemon. SIGTERM/Ctrl-C stop it and "
                    "its services gracefully. Without --address it uses the cluster started on this "
                    "machine, or starts a head node (stopped on exit).")
    run.add_argument("spec", metavar="SPEC.toml", help="the services (actorcore.services.spec)")
    run.add_argument("--address", type=common.endpoints, metavar="HOST:PORT",
                     help="the cluster's etcd (default: the cluster of this machine, or a new local head)")
    run.add_argument("--detach", action="store_true", help="run in the background (needs --pid-file)")
    run.add_argument("--pid-file", metavar="PATH", help="write the daemon's pid there while it runs")
    run.set_defaults(handler=_supervise, parser=run)
    for name, add in (("status", _add_status), ("reload", _add_reload)):
        add(commands, name, f"actorcore supervise {name}")
        add(subparsers, f"supervise-{name}", f"actorcore supervise {name}")


def _add_status(subparsers, name: str, prog: str) -> None:
    status = subparsers.add_parser(
        name, prog=prog, help="show the daemon and its services",
        description="The daemon (state, leader, standbys, escalations, last reload) and the tree of its "
                    "services: per actor its state, node, pid, restarts, uptime and the age of its last "
                    "checkpoint, as the cluster's etcd records them.")
    common.add_query_flags(status, 'print JSON: {"daemon": {...}, "services": [...]}')
    status.set_defaults(handler=_supervise_status, parser=status)


def _add_reload(subparsers, name: str, prog: str) -> None:
    reload = subparsers.add_parser(
        name, prog=prog, help="make the daemon re-read its spec",
        description="Ask the leading daemon to re-read its spec file (as SIGHUP does): added services "
                    "start, removed ones stop, changed ones restart, unchanged ones are untouched. "
                    "Prints what changed; an invalid spec changes nothing and exits 1.")
    common.add_query_flags(reload, "print the reload's result as JSON")
    reload.set_defaults(handler=_supervise_reload, parser=reload)


def _supervise(args: argparse.Namespace) -> int:
    from .. import cluster_files as files
    from ..node_launcher import read_line

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
        env = {**os.environ, SUPERVISE_READY_FD_ENV: str(write_fd)}
        with open(log_path, "ab") as log:
            daemon = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True, pass_fds=(write_fd,), env=env)
        os.close(write_fd)
        with progress.waiting("actorcore supervise: waiting for the daemon to start its services"):
            line = read_line(read_fd, READY_TIMEOUT)
        os.close(read_fd)
        if not line:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            return common.fail("supervise", f"the daemon did not start its services (pid {daemon.pid}); "
                                            f"its log {log_path} ends with:\n{tail}")
        print(f"actorcore supervise: daemon pid {daemon.pid}, {line.strip()}, log {log_path}; stop it with "
              f"kill $(cat {args.pid_file})")
        return 0
    import logging

    from ..services.daemon import main as supervise_main

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return supervise_main(args.spec, args.address, args.pid_file)


def _supervise_status(args: argparse.Namespace) -> int:
    from ..services.status import format_status, gather

    status = common.ask_cluster("supervise status", args.address, None, gather)
    if isinstance(status, int):
        return status
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _supervise_reload(args: argparse.Namespace) -> int:
    from ..services.daemon import request_reload

    async def ask(client, cluster):
        try:
            return await request_reload(client, cluster)
        except (RuntimeError, TimeoutError) as error:
            return common.fail("supervise reload", str(error))

    result = common.ask_cluster("supervise reload", args.address, None, ask)
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
