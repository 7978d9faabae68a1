"""`actorcore.cli.interrupt`: SIGTERM and Ctrl-C are recorded, never raised where they land, and
the handlers and wake-up fd that were there before come back (but for those the block itself
installed)."""

from __future__ import annotations

import os
import select
import signal

import pytest

from actorcore.cli.interrupt import Interrupted, Interruptible

pytestmark = pytest.mark.timeout(30)


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_is_recorded_and_raised_only_by_check(signum):
    with Interruptible() as interrupt:
        interrupt.check()  # nothing came yet
        assert not _readable(interrupt.fd)
        os.kill(os.getpid(), signum)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a C call: pending Python handlers run after it
        assert interrupt.signum == signum
        assert _readable(interrupt.fd)
        with pytest.raises(Interrupted, match=signal.Signals(signum).name) as raised:
            interrupt.check()
        assert raised.value.signum == signum


def test_the_first_signal_is_the_one_kept():
    with Interruptible() as interrupt:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert interrupt.signum == signal.SIGINT


def test_the_previous_handlers_and_wakeup_fd_come_back():
    before = {s: signal.getsignal(s) for s in Interruptible.SIGNALS}
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_wakeup = signal.set_wakeup_fd(write_fd)
    try:
        with Interruptible() as interrupt:
            assert all(signal.getsignal(s) != before[s] for s in Interruptible.SIGNALS)
            fd = interrupt.fd
        assert {s: signal.getsignal(s) for s in Interruptible.SIGNALS} == before
        assert signal.set_wakeup_fd(write_fd) == write_fd
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)  # its pipe is closed
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        os.close(read_fd)
        os.close(write_fd)


def test_a_handler_the_block_installs_stays():
    before = {s: signal.getsignal(s) for s in Interruptible.SIGNALS}
    try:
        with Interruptible():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as `start --block` does once its node ended
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
    finally:
        signal.signal(signal.SIGTERM, before[signal.SIGTERM])
