"""Handing secrets to a child process over an inherited pipe, never in its environment or argv
(docs/architecture.md, "Security model").

The environment of a process is inherited by every process it starts (a user's task that runs
``subprocess.run(...)`` included) and readable in ``/proc/<pid>/environ`` by its user; argv is
readable by every user. So the parent writes the secrets (one JSON object and a newline) to a
pipe before it starts the child, passes the pipe's read end to the child (its number, not a
secret, in ``$ACTORCORE_SECRETS_FD``) and the child reads them and closes the pipe as it starts
(`receive`).

The same pipe can tie the child to its parent's life: with ``keep_open`` the parent keeps the
write end (`Handover.parent_end`) and the child's `receive` hands back the read end, on which it
sees end-of-file as soon as the parent is gone, whatever killed it (the kernel closes a dead
process's descriptors). This is how ``actorcore start --block`` owns its node.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from .env import SECRETS_FD_ENV

__all__ = ["Handover", "hand_over", "receive"]


@dataclass
class Handover:
    """A pipe holding secrets for one child: pass `child_end` to it (``pass_fds``) with `env`,
    then call `started` (or `abandon` if it could not be started)."""

    child_end: int
    parent_end: int | None  # kept by the parent while the child should live (``keep_open``)
    env: dict

    def started(self) -> None:
        """The child has its copy of the read end: close ours."""
        os.close(self.child_end)

    def abandon(self) -> None:
        """The child was not started: close both ends."""
        os.close(self.child_end)
        if self.parent_end is not None:
            os.close(self.parent_end)
            self.parent_end = None


def hand_over(secrets: dict, env: dict, *, keep_open: bool = False) -> Handover:
    """A pipe holding `secrets` (JSON-serializable), and `env` with the child's end named in it.
    The child's end is inheritable only through ``pass_fds``; with `keep_open` the write end
    stays open in this process (see the module's docstring)."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, json.dumps(secrets).encode() + b"\n")  # far below a pipe's buffer
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if not keep_open:
        os.close(write_fd)
        write_fd = None
    return Handover(read_fd, write_fd, {**env, SECRETS_FD_ENV: str(read_fd)})


def receive(*, keep_watch: bool = False) -> tuple[dict, int | None]:
    """In the child: the secrets its parent handed over (``{}`` if none) and, with `keep_watch`,
    the pipe's still open read end (None if there is none): it becomes readable, at end-of-file,
    when the parent is gone or lets go. Otherwise the pipe is closed here. The variable naming
    the pipe is removed from ``os.environ`` either way, so no process started here inherits it."""
    fd_text = os.environ.pop(SECRETS_FD_ENV, None)
    if not fd_text:
        return {}, None
    fd = int(fd_text)
    os.set_inheritable(fd, False)  # none of the processes started here gets it
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        secrets = json.loads(data) if data.strip() else {}
    except BaseException:
        os.close(fd)
        raise
    if not keep_watch:
        os.close(fd)
        return secrets, None
    return secrets, fd
