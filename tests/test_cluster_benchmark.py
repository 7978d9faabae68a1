"""`python -m benchmarks.cluster --quick --json --no-ray` reports every metric, and leaves nothing behind.

Speed is not asserted (the machine is shared): only that each metric has a positive number, and
that each cluster the benchmark started is gone afterwards: its ACTORCORE_HOME removed, no
process left with that ACTORCORE_HOME in its environment, no shared-memory segment of its nodes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actorcore import cluster_files
from actorcore.objects import list_segments
from actorcore.testing import processes_of, wait_until
from benchmarks.cluster import METRICS

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = [
    "cross_node_100mb_gbps",
    "cross_node_task_rtt_ms",
    "tasks_per_s_3_nodes",
    "tasks_per_s_1_node",
    "scaling_3_vs_1",
]


def test_metric_names():
    assert list(METRICS) == EXPECTED


def test_quick_json_no_ray():
    env = {k: v for k, v in os.environ.items() if k not in (cluster_files.HOME_ENV, cluster_files.TOKEN_ENV)}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster", "--quick", "--json", "--no-ray"],
        check=False, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["ray"] is None and report["ray_skipped_reason"]
    metrics = report["actorcore"]["metrics"]
    for name in EXPECTED:
        record = metrics.get(name)
        assert record is not None, f"{name} missing; stderr:\n{result.stderr[-4000:]}"
        value = record.get("value")
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, record)
    assert metrics["cross_node_100mb_gbps"]["object_bytes"] == 10 * 1024 * 1024

    clusters = report["actorcore"]["clusters"]
    assert [cluster["nodes"] for cluster in clusters] == [3, 1]
    for cluster in clusters:
        assert len(cluster["node_ids"]) == cluster["nodes"], cluster
        assert "stop_error" not in cluster, cluster
        assert not Path(cluster["home"]).exists(), cluster
        wait_until(lambda home=cluster["home"]: not processes_of(home), 30,
                   f"the processes of cluster {cluster} to end", interval=0.1)
        for node_id in cluster["node_ids"]:
            assert list_segments(node_id) == [], (cluster, node_id)
