"""Keeper process: owns one local etcd and cleans up after it, whatever happens.

`EtcdServer` runs this file as ``python -I -S _etcd_keeper.py [--remove DIR] -- ETCD ARGS...``
(stdlib only, so it starts in ~15 ms and never imports the actorcore package). The keeper
starts etcd as its own child and then sleeps in ``select`` on two file descriptors:

- its stdin, the read end of a pipe whose only write end is held by the parent. Commands
  arrive as lines: ``stop`` (SIGTERM) or ``kill`` (SIGKILL) etcd, ``start`` it again with
  the same arguments. EOF means the parent closed the pipe
  (`EtcdServer.stop()`) or died, even by SIGKILL, because the kernel closes a dead process's
  descriptors. Either way the keeper stops etcd (SIGTERM, then SIGKILL), removes the
  ``--remove`` directory (the throwaway data dir) and exits.
- a signal wake-up fd, which reports SIGCHLD (etcd exited) and SIGTERM/SIGHUP/SIGINT (stop
  the same way as on EOF).

Nothing polls. On stdout the keeper reports ``pid N`` after each etcd start, ``stopped``
after a stop command and ``exited RC`` when etcd exits on its own; etcd's stderr is the keeper's stderr (a file the
parent reads when it must explain a failed start). On Linux etcd also gets
PR_SET_PDEATHSIG=SIGKILL, so even a SIGKILLed keeper takes etcd with it.
"""

import os
import select
import shutil
import signal
import subprocess
import sys

STOP_GRACE_S = 5.0


def _pdeathsig_setter():
    """A preexec_fn making the child get SIGKILL when the keeper dies (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _start(cmd, preexec):
    """Start etcd and report its pid, or report the error and return None."""
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            preexec_fn=preexec,  # noqa: PLW1509 - the keeper process runs no threads
        )
    except OSError as e:
        _report(f"error cannot run {cmd[0]}: {e}")
        return None
    _report(f"pid {proc.pid}")
    return proc


def _stop(proc, sig=signal.SIGTERM):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _report(line):
    try:
        os.write(1, (line + "\n").encode())
    except OSError:
        pass  # the parent is gone; EOF on stdin will follow


def main(argv):
    """Run etcd with ``argv`` and keep it until EOF on stdin or a stop signal, then stop it and
    remove the ``--remove`` directory."""
    remove_dir = None
    if argv[:1] == ["--remove"]:
        remove_dir, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda *_: None)

    preexec = _pdeathsig_setter()
    proc = _start(argv, preexec)
    exit_reported = False
    pending = b""
    try:
        while True:
            ready, _, _ = select.select([0, wake_r], [], [])
            if wake_r in ready:
                signums = set(os.read(wake_r, 64))
                if signums & {signal.SIGTERM, signal.SIGHUP, signal.SIGINT}:
                    return
                if proc is not None and proc.poll() is not None and not exit_reported:
                    _report(f"exited {proc.returncode}")
                    exit_reported = True
            if 0 in ready:
                data = os.read(0, 4096)
                if not data:
                    return
                pending += data
                while b"\n" in pending:
                    command, pending = pending.split(b"\n", 1)
                    if command in (b"stop", b"kill"):
                        _stop(proc, signal.SIGKILL if command == b"kill" else signal.SIGTERM)
                        exit_reported = True
                        _report("stopped")
                    elif command == b"start" and (proc is None or proc.poll() is not None):
                        proc = _start(argv, preexec)
                        exit_reported = False
    finally:
        _stop(proc)
        if remove_dir:
            shutil.rmtree(remove_dir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
