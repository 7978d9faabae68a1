"""The nodes `actorcore start` started on this machine, as their node files record them
(`cluster_files.node_files`): whether each still runs, stopping them, and forgetting those
that are gone (their files and the shared memory they left)."""

from __future__ import annotations

import os
import select
import signal
import time

from .. import cluster_files as files

__all__ = ["forget_node", "forget_stopped_nodes", "kill", "node_running", "wait_gone"]


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


def node_running(record: dict) -> bool:
    """Whether the node of `record` still runs (its pid alive and, where /proc tells,
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


def kill(pid: int) -> None:
    """SIGKILL `pid`, and its process group if it leads one (a node `start` started leads
    its own, with its workers)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_gone(records: list[dict], timeout: float) -> list[dict]:
    """Wait up to `timeout` seconds for the nodes to exit; return those still running."""
    deadline = time.monotonic() + timeout
    pidfds = {}
    for record in records:
        try:
            pidfds[os.pidfd_open(record["pid"])] = record
        except (AttributeError, OSError):
            pass
    try:
        while True:
            left = [r for r in records if node_running(r)]
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


def forget_node(record: dict) -> int:
    """Remove what a node that no longer runs left here: its shared memory, its node file and,
    once no node is left, cluster.json. Returns the number of segments removed."""
    from ..objects import cleanup_session
    from ..objects.spill import remove_spill_directory

    removed = cleanup_session(record["node_id"])
    remove_spill_directory(record["node_id"], record.get("spill_base"))
    files.remove_node_file(record["node_id"])
    if not files.node_files():
        files.remove_cluster_info()
    return removed


def forget_stopped_nodes() -> None:
    """Drop the files of nodes that died without `stop` (e.g. a reboot)."""
    for record in files.node_files():
        if not node_running(record):
            forget_node(record)
