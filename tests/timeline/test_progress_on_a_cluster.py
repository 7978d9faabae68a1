"""Progress bars from a task on the node the driver is not attached to reach the driver's
terminal (they travel with the workers' output, through the driver's log sink)."""

from __future__ import annotations

import re

import pytest

import actorcore as ray
from actorcore import progress_bars
from actorcore.testing import wait_until
from actorcore.util import tqdm as progress

pytestmark = pytest.mark.timeout(240)


@ray.remote(resources={"other": 1})
def count_to(steps):
    bar = progress.tqdm(desc="far away", total=steps, flush_interval_s=0)
    for _ in range(steps):
        bar.update(1)
    bar.close()
    return ray.get_runtime_context().get_node_id()


def test_a_bar_on_the_other_node_shows_on_the_driver(two_nodes, capsys):
    board = progress_bars.board()
    before = board.finished
    node = ray.get(count_to.remote(4))
    assert node != ray.get_runtime_context().get_node_id()
    wait_until(lambda: board.finished > before, 60, "the remote task's bar to close on the driver")
    err = capsys.readouterr().err
    assert re.search(r"far away \(pid=\d+\): 100%\|[^\n\r]*\| 4/4", err), err
