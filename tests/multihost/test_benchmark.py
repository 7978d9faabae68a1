"""`python -m benchmarks.cluster --hosts --quick --json` reports actorcore's 3-node metrics on
loopback and across namespaced hosts, and leaves no namespace behind.

Speed is not asserted (the machine is shared): only that every figure is a positive number."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actorcore import cluster_files
from actorcore.testing import processes_of, wait_until

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
THREE_NODE_METRICS = ["cross_node_100mb_gbps", "cross_node_task_rtt_ms", "tasks_per_s_3_nodes"]


def test_quick_json_across_hosts():
    env = {k: v for k, v in os.environ.items() if k not in (cluster_files.HOME_ENV, cluster_files.TOKEN_ENV)}
    run = subprocess.Popen([sys.executable, "-m", "benchmarks.cluster", "--hosts", "--quick", "--json"],
                           cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = run.communicate(timeout=280)
    assert run.returncode == 0, err[-4000:]
    report = json.loads(out)
    assert report["mode"] == "hosts"
    for side in ("actorcore", "actorcore_hosts"):
        assert list(report[side]["metrics"]) == THREE_NODE_METRICS, side
        for name, record in report[side]["metrics"].items():
            value = record.get("value")
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (side, name, record)
    assert report["actorcore_hosts"]["metrics"]["cross_node_100mb_gbps"]["object_bytes"] == 10 * 1024 * 1024
    for name in THREE_NODE_METRICS:
        assert report["hosts_vs_loopback"][name] == pytest.approx(
            report["actorcore_hosts"]["metrics"][name]["value"] / report["actorcore"]["metrics"][name]["value"])
    (hosts,) = report["actorcore_hosts"]["clusters"]
    assert len(hosts["node_ids"]) == 3 and hosts["address"] == "10.77.0.1:2379"
    (loopback,) = report["actorcore"]["clusters"]
    assert not Path(loopback["home"]).exists()
    wait_until(lambda: not processes_of(loopback["home"]), 30, "the loopback cluster's processes to end")
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"acmh-{run.pid}-" not in namespaces
