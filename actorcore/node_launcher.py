"""Starting a node process: the one launcher behind ``init()`` and ``actorcore start``.

`launch` starts ``python -m actorcore.node CONFIG_JSON`` with a `NodeConfig`, the cluster
token and etcd credentials handed over on a pipe (`actorcore.process_secrets`: neither in its
environment, which its workers and their subprocesses would inherit, nor on its command line,
which other users can read), and a pipe on which the node writes its `NodeEndpoints` once its
actors run. With ``owned`` the node lives only as long as the launching process: it stops when
that process is gone, whatever killed it (``actorcore start --block``).
`NodeProcess.wait_ready` reads that line. What a caller does around it differs: ``init()``
starts the local etcd while the node imports, ``actorcore start`` also waits for the node's
record in etcd and keeps the node's output in a log file.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from .env import ETCD_PASSWORD_ENV, TOKEN_ENV
from .node_config import NodeConfig, NodeEndpoints
from .process_secrets import hand_over

__all__ = ["NodeProcess", "NodeStartError", "launch", "read_line"]


class NodeStartError(RuntimeError):
    """The node process did not report ready; the message says what happened instead, and
    `exit_code` how the process ended, if it did."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NodeProcess:
    """A node process started by `launch`, with the read end of its ready pipe."""

    def __init__(self, process: subprocess.Popen, config: NodeConfig, ready_fd: int,
                 owner_fd: int | None = None) -> None:
        self.process = process
        self.config = config
        self._ready_fd: int | None = ready_fd
        # Held open for the life of this process when the node is `owned` (never closed here:
        # the node stops when it is closed, which the kernel does when this process ends).
        self.owner_fd = owner_fd

    @property
    def pid(self) -> int:
        """The node process's pid."""
        return self.process.pid

    def wait_ready(self, timeout: float | None, exit_timeout: float = 10.0, *,
                   wake_fd: int | None = None) -> NodeEndpoints:
        """The endpoints the node reports once its actors run (waiting at most `timeout`
        seconds; None: as long as it takes). Raise `NodeStartError` if it reports none: it
        timed out, or it closed the pipe without a line (then it is exiting: wait up to
        `exit_timeout` seconds for its exit code), or it wrote something else, or `wake_fd`
        became readable first (the caller's signal wake-up fd: the caller knows why)."""
        try:
            line = read_line(self._ready_fd, timeout, wake_fd)
        finally:
            self.close()
        if line is None:
            if wake_fd is not None and _readable(wake_fd):
                raise NodeStartError("the wait for the node to report ready was interrupted")
            raise NodeStartError(f"the node did not report ready within {timeout:g} s")
        if not line:
            why = "the node closed its ready pipe without reporting ready"
            try:
                code = self.process.wait(exit_timeout)
            except subprocess.TimeoutExpired:
                raise NodeStartError(why) from None
            raise NodeStartError(f"{why}; the node process exited with code {code}", code)
        try:
            return NodeEndpoints.from_json(line)
        except ValueError:
            raise NodeStartError(f"the node reported an unexpected ready line {line!r}") from None

    def close(self) -> None:
        """Close the ready pipe (`wait_ready` does)."""
        if self._ready_fd is not None:
            os.close(self._ready_fd)
            self._ready_fd = None


def launch(config: NodeConfig, *, token: str, etcd_auth: dict | None = None, tls: dict | None = None,
           output: Path | None = None, own_session: bool = False, owned: bool = False) -> NodeProcess:
    """Start a node process for `config` (its `ready_fd` is set here). Its output goes to the
    file `output` (appended, mode 0600) or, if None, to ours; `own_session` puts it in a
    session (and process group) of its own; `owned` makes it stop when this process is gone.
    `tls` (``TlsIdentity.to_dict()``) is the cluster's TLS identity, for gRPC between hosts."""
    read_fd, write_fd = os.pipe()
    # Our own processes cache their bytecode even where PYTHONDONTWRITEBYTECODE is set:
    # compiling actorcore on every worker start costs ~40-80 ms of each start-up. Secrets of
    # ours are not passed on in the environment (see the module's docstring).
    unwanted = ("PYTHONDONTWRITEBYTECODE", TOKEN_ENV, ETCD_PASSWORD_ENV)
    env = {k: v for k, v in os.environ.items() if k not in unwanted}
    secrets = hand_over({"token": token, "etcd_auth": etcd_auth, "tls": tls, "owned": owned}, env,
                        keep_open=owned)
    config = replace(config, ready_fd=write_fd)
    stdout = None
    if output is not None:
        stdout = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "actorcore.node", config.to_json()],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stdout, pass_fds=(write_fd, secrets.child_end),
            env=secrets.env, start_new_session=own_session,
        )
    except BaseException:
        os.close(read_fd)
        secrets.abandon()
        raise
    finally:
        os.close(write_fd)
        if stdout is not None:
            os.close(stdout)
    secrets.started()
    return NodeProcess(process, config, read_fd, secrets.parent_end)


def read_line(fd: int, timeout: float | None, wake_fd: int | None = None) -> str | None:
    """The first line written to `fd` within `timeout` seconds (None: no limit): '' at EOF
    without one, None on timeout, or as soon as `wake_fd` (if given) is readable."""
    deadline = None if timeout is None else time.monotonic() + timeout
    watched = [fd] if wake_fd is None else [fd, wake_fd]
    data = b""
    while b"\n" not in data:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        readable, _, _ = select.select(watched, [], [], remaining)
        if wake_fd in readable:
            return None
        if readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace") if b"\n" in data else ""


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])
