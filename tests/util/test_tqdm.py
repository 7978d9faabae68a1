"""Progress bars on a real local node: a bar inside tasks shows on the driver's terminal as one
bar per task (not as output lines), other output still printed; the driver's bar over refs;
then the driver's board alone."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import actorcore as ray
from actorcore import progress_bars
from actorcore.exceptions import GetTimeoutError
from actorcore.testing import wait_until
from actorcore.util import tqdm as progress

pytestmark = pytest.mark.timeout(120)


@ray.remote
def crunch(steps):
    for _ in progress.tqdm(range(steps), desc="crunch", flush_interval_s=0):
        time.sleep(0.01)
    print("crunched", flush=True)
    return steps


@ray.remote
def stall():
    time.sleep(30)


@pytest.mark.usefixtures("cluster")
def test_a_tasks_bar_shows_on_the_driver_one_per_task(capsys):
    board = progress_bars.board()
    before = board.finished
    assert progress.get([crunch.remote(5), crunch.remote(7)], desc="waiting") == [5, 7]
    out, err = [], []

    def both_over() -> bool:
        # a worker's lines reach the driver one message each, after the task's result
        captured = capsys.readouterr()
        out.append(captured.out)
        err.append(captured.err)
        return board.finished >= before + 2 and len(re.findall(r"\(pid=\d+\) crunched", "".join(out))) >= 2

    wait_until(both_over, 30, "both tasks' bars to close and their output to reach the driver")
    out, err = "".join(out), "".join(err)
    for steps in (5, 7):
        assert re.search(rf"crunch \(pid=\d+\): 100%\|[^\n\r]*\| {steps}/{steps}", err), err
    assert re.search(r"waiting: 100%\|[^\n\r]*\| 2/2", err), err
    assert progress_bars.MAGIC not in out + err  # state lines never printed
    assert len(re.findall(r"\(pid=\d+\) crunched", out)) == 2


@pytest.mark.usefixtures("cluster")
def test_waiting_under_a_bar_times_out_with_a_clear_error():
    ref = stall.remote()
    with pytest.raises(GetTimeoutError, match=r"1 of 1 refs were not ready within 0\.5 s"):
        list(progress.as_completed([ref], timeout=0.5, file=io.StringIO()))
    ray.cancel(ref, force=True)


def test_the_board_keeps_one_bar_per_uuid_and_passes_other_lines():
    screen = io.StringIO()
    board = progress_bars.BarBoard(file=screen)
    line = progress_bars.encode({"uuid": "a", "desc": "load", "n": 3, "total": 10, "unit": "file", "pid": 42,
                                 "closed": False})
    assert board.take(["hello", line, progress_bars.MAGIC + "{cut"]) == ["hello", progress_bars.MAGIC + "{cut"]
    board.update({"uuid": "a", "desc": "load", "n": 10, "total": 10, "unit": "file", "pid": 42, "closed": True})
    assert board.finished == 1
    assert re.search(r"load \(pid=42\): 100%\|[^\n\r]*\| 10/10", screen.getvalue())
    with pytest.raises(ValueError, match="flush_interval_s=-1"):
        progress.tqdm(total=3, flush_interval_s=-1)
    with pytest.raises(ValueError, match="iterating needs an iterable"):
        iter(progress.tqdm(total=3)).__next__()


def test_a_ray_program_uses_tqdm_ray_unmodified(tmp_path):
    """``actorcore run`` a program written for Ray: ``from ray.experimental import tqdm_ray``."""
    program = tmp_path / "bars.py"
    program.write_text(
        "import ray\n"
        "from ray.experimental import tqdm_ray\n\n"
        "@ray.remote\n"
        "def work(n):\n"
        "    bar = tqdm_ray.tqdm(total=n, desc='ray program')\n"
        "    for _ in range(n):\n"
        "        bar.update(1)\n"
        "    bar.close()\n"
        "    return n\n\n"
        "ray.init(num_cpus=1)\n"
        "print(ray.get(work.remote(3)))\n"
        "from actorcore.progress_bars import board  # (the test's: wait for the bar's last line)\n"
        "from actorcore.testing import wait_until\n"
        "wait_until(lambda: board().finished, 30, 'the bar to close')\n"
        "ray.shutdown()\n")
    env = {**os.environ, "ACTORCORE_HOME": str(tmp_path / "home")}
    env.pop("ACTORCORE_TOKEN", None)
    result = subprocess.run([str(Path(sys.executable).parent / "actorcore"), "run", str(program)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("3")
    assert re.search(r"ray program \(pid=\d+\): 100%\|[^\n\r]*\| 3/3", result.stderr), result.stderr
