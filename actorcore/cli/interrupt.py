"""SIGTERM and Ctrl-C as a request that a command heeds between its steps.

A signal handler that raises (Python's own for Ctrl-C among them) interrupts whatever runs when
the signal lands: an import, a finalizer or a weakref callback (where the exception is printed
and lost, and the command goes on as if no signal had come), or the code between starting a
child process and recording it. An interrupted import can even mark the interpreter so that it
kills itself with SIGINT at exit, whatever the command returned. `Interruptible` records the
signal instead: the command calls `check` between steps (it raises `Interrupted` once a signal
came), and a wait that may last long also waits for `fd`, which becomes readable when a signal
arrives (it is the signal module's wake-up fd). On leaving the block the handlers that were there come
back, except where the block installed handlers of its own.
"""

from __future__ import annotations

import os
import signal

__all__ = ["Interrupted", "Interruptible"]


class Interrupted(Exception):
    """The command was asked to stop (SIGTERM or Ctrl-C) while it ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class Interruptible:
    """Within ``with Interruptible() as interrupt:`` SIGTERM and SIGINT are recorded, not raised
    (the main thread only, as any signal handler)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._read_fd = self._write_fd = -1
        self._previous_wakeup_fd = -1
        self._previous_handlers: dict[int, object] = {}

    @property
    def fd(self) -> int:
        """A file descriptor that is readable once a signal came (select on it; never read it)."""
        return self._read_fd

    def check(self) -> None:
        """Raise `Interrupted` if SIGTERM or SIGINT came since the block began."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def __enter__(self) -> Interruptible:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # set_wakeup_fd's requirement
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._previous_handlers = {signum: signal.signal(signum, self._record) for signum in self.SIGNALS}
        return self

    def __exit__(self, *_exc) -> None:
        for signum, handler in self._previous_handlers.items():
            # A handler the block put in place stays: `start --block` ignores a late SIGTERM,
            # which the default handler would turn into a kill as the process exits.
            if signal.getsignal(signum) == self._record:
                signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def _record(self, signum: int, _frame) -> None:
        if self.signum is None:
            self.signum = signum
